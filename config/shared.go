package config

import (
	"bytes"
	"slices"
	"strings"
)

// group is one [shared.NAME] table while the definition is parsed.
type group struct {
	name   string
	values map[string]Value
}

// shared reads the [shared] table: NAME to a table of values, each
// flattened as a client's table is. On error the groups read so far are
// returned, for clearGroups.
func (p *parser) shared(doc map[string]any) (map[string]*group, error) {
	raw, ok := doc[sharedTable]
	if !ok {
		return nil, nil
	}
	table, ok := raw.(map[string]any)
	if !ok {
		return nil, p.fail([]string{sharedTable}, "want [shared.NAME] tables of values")
	}
	groups := make(map[string]*group, len(table))
	for _, name := range sortedKeys(table) {
		path := []string{sharedTable, name}
		if err := checkSegment(name, MaxClientNameBytes); err != "" {
			return groups, p.fail(path, "invalid shared name: %s", err)
		}
		switch sub := table[name].(type) {
		case *plainTable:
			g := &group{name: name, values: sub.values} // fastDocument's names are copies
			sub.values = nil
			groups[g.name] = g
			if err := p.plainValues(path, g.values); err != nil {
				return groups, err
			}
		case map[string]any:
			g := &group{name: strings.Clone(name), values: make(map[string]Value, len(sub))}
			groups[g.name] = g
			if err := p.values(g.values, path, "", sub); err != nil {
				return groups, err
			}
		default:
			return groups, p.fail(path, "want a table of values: [shared.%s]", name)
		}
	}
	delete(doc, sharedTable)
	return groups, nil
}

// clearGroups zeroes the groups' values: each client has its own copy.
func clearGroups(groups map[string]*group) {
	for _, g := range groups {
		for n, v := range g.values {
			clear(v.Text)
			delete(g.values, n)
		}
	}
}

// sharedGroups lists the groups' names and value names, sorted.
func sharedGroups(groups map[string]*group) []SharedGroup {
	out := make([]SharedGroup, 0, len(groups))
	for _, name := range sortedKeys(groups) {
		out = append(out, SharedGroup{Name: name, Names: sortedKeys(groups[name].values)})
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// includeList reads a client's include key: an array of defined group
// names, each at most once. A missing key is no groups.
func (p *parser) includeList(client string, v any, groups map[string]*group) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	path := []string{client, includeKey}
	list, ok := v.([]any)
	if !ok {
		return nil, p.fail(path, "want an array of [shared] table names (include is reserved)")
	}
	out := make([]string, 0, len(list))
	for i, e := range list {
		name, ok := e.(string)
		if !ok {
			return nil, p.fail(path, "element %d: want a [shared] table name", i+1)
		}
		g, ok := groups[name]
		if !ok {
			if checkSegment(name, MaxClientNameBytes) != "" {
				return nil, p.fail(path, "element %d: include names no [shared] table", i+1)
			}
			return nil, p.fail(path, "include names shared %q, which is not defined", name)
		}
		if slices.Contains(out, g.name) {
			return nil, p.fail(path, "shared %q is included twice", name)
		}
		out = append(out, g.name)
	}
	return out, nil
}

// include copies the values of c's groups into c. A name c already has,
// from its own table or an earlier group, is an error, never an override.
// copies counts the values copied so far, for MaxSharedCopies.
func (p *parser) include(c *DefinitionClient, groups map[string]*group, copies *int) error {
	from := make(map[string]string) // name -> the group that gave it
	for _, gname := range c.Include {
		g := groups[gname]
		for _, n := range sortedKeys(g.values) {
			if other, ok := from[n]; ok {
				return p.fail([]string{c.Name, includeKey}, "shared %q and shared %q both give %q", other, gname, n)
			}
			if _, own := c.Values[n]; own {
				return p.fail(append([]string{c.Name}, strings.Split(n, ".")...),
					"client %q has its own value and shared %q gives one of the same name", c.Name, gname)
			}
			if len(c.Values) >= MaxValuesPerClient {
				return p.fail([]string{c.Name, includeKey}, "client %q has more than %d values with shared %q", c.Name, MaxValuesPerClient, gname)
			}
			if *copies++; *copies > MaxSharedCopies {
				return p.fail([]string{c.Name, includeKey}, "more than %d shared values given to clients, counted per client", MaxSharedCopies)
			}
			v := g.values[n]
			v.Text = bytes.Clone(v.Text)
			from[n] = gname
			c.Values[n] = v
		}
	}
	return nil
}
