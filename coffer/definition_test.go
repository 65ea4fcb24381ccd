package coffer_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/config"
	"github.com/coffer-project/coffer/frame"
)

const defCanary = "canary-def-93b7e2"

func TestParseDefinitionTypes(t *testing.T) {
	web := kfKey(t, 0x10).Public()
	src := fmt.Sprintf(`[clients]
web = %q
[web]
s = %q
i = -42
f = 1.5
inf = -inf
b = true
odt = 2024-01-02T03:04:05.5+01:00
ldt = 2024-01-02T03:04:05
ld = 2024-01-02
lt = 03:04:05
[web.db]
password = "p"
`, web, defCanary)
	def, err := coffer.ParseDefinition([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	vals := def.Clients[0].Values
	want := map[string]frame.Value{
		"s":           {Kind: frame.KindString, Text: []byte(defCanary)},
		"i":           {Kind: frame.KindInt, Int: -42},
		"f":           {Kind: frame.KindFloat, Float: 1.5},
		"inf":         {Kind: frame.KindFloat, Float: math.Inf(-1)},
		"b":           {Kind: frame.KindBool, Bool: true},
		"odt":         {Kind: frame.KindDateTime, Text: []byte("2024-01-02T03:04:05.5+01:00")},
		"ldt":         {Kind: frame.KindLocalDateTime, Text: []byte("2024-01-02T03:04:05")},
		"ld":          {Kind: frame.KindLocalDate, Text: []byte("2024-01-02")},
		"lt":          {Kind: frame.KindLocalTime, Text: []byte("03:04:05")},
		"db.password": {Kind: frame.KindString, Text: []byte("p")},
	}
	if len(vals) != len(want) {
		t.Errorf("got %d values, want %d", len(vals), len(want))
	}
	for n, w := range want {
		g := vals[n]
		if g.Kind != w.Kind || string(g.Text) != string(w.Text) || g.Int != w.Int || g.Float != w.Float || g.Bool != w.Bool {
			t.Errorf("%s: got %+v, want %+v", n, g, w)
		}
	}
	// The shard survives the protocol's encoding with every kind intact.
	enc, err := frame.EncodeShard(vals)
	if err != nil {
		t.Fatal(err)
	}
	back, err := frame.DecodeShard(enc)
	if err != nil {
		t.Fatal(err)
	}
	for n, w := range want {
		if g := back[n]; g.Kind != w.Kind || string(g.AppendText(nil)) != string(w.AppendText(nil)) {
			t.Errorf("%s after the wire: got %+v, want %+v", n, g, w)
		}
	}
}

func TestParseDefinitionKeyErrors(t *testing.T) {
	a, b := kfKey(t, 0x11).Public(), kfKey(t, 0x12).Public()
	typo := []byte(a.String())
	typo[20] ^= 1 // 'a'..'z' and '2'..'7' stay in the alphabet for bit 0 mostly
	if typo[20] < 'a' && typo[20] < '2' || typo[20] > 'z' {
		typo[20] = 'a'
	}
	tests := []struct {
		name, src string
		is        error
		want      []string
	}{
		{"checksum", fmt.Sprintf("[clients]\n\nweb = %q\n", typo), coffer.ErrKeyChecksum, []string{"line 3", `client "web"`, "key 1"}},
		{"low-order key", fmt.Sprintf("[clients]\nweb = %q\n", coffer.PublicKey{}), coffer.ErrWeakKey, []string{"line 2", "key 1"}},
		{"secret key pasted", "[clients]\nweb = \"coffersk1" + strings.Repeat("a", 58) + "\"\n", coffer.ErrSecretKeyGiven, []string{"line 2"}},
		{"not a key", fmt.Sprintf("[clients]\nweb = %q\n", defCanary), coffer.ErrKeyFormat, []string{"line 2"}},
		{"second key bad", fmt.Sprintf("[clients]\nw = [\n  %q,\n  \"x\",\n]\n", a), coffer.ErrKeyFormat, []string{"line 2", "key 2"}},
		{"duplicate across names", fmt.Sprintf("[clients]\nweb = %q\nworker = [%q, %q]\n", a, b, a), nil, []string{"line 3", `client "worker"`, "key 2", `also listed for client "web"`}},
		{"duplicate in one name", fmt.Sprintf("[clients]\nweb = [%q, %q]\n", a, a), nil, []string{"listed twice"}},
		{"config error", fmt.Sprintf("[clients]\nweb = %q\n[web]\nx = [%q]\n", a, defCanary), nil, []string{"line 4", "arrays"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			def, err := coffer.ParseDefinition([]byte(tc.src))
			if err == nil {
				t.Fatalf("got %+v, want an error", def)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("got %v, want %v", err, tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), defCanary) {
				t.Errorf("error quotes a value: %v", err)
			}
		})
	}
}

// TestLimitsAgree checks config's copies of the protocol's limits.
func TestLimitsAgree(t *testing.T) {
	if config.MaxSecretNameBytes != frame.MaxNameBytes {
		t.Errorf("config.MaxSecretNameBytes %d != frame.MaxNameBytes %d", config.MaxSecretNameBytes, frame.MaxNameBytes)
	}
	// The shard decoder's map limit: a client at config's limit must decode.
	s := make(frame.Shard, config.MaxValuesPerClient)
	for i := range config.MaxValuesPerClient {
		s[fmt.Sprintf("v%d", i)] = frame.Value{Kind: frame.KindBool}
	}
	enc, err := frame.EncodeShard(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := frame.DecodeShard(enc); err != nil {
		t.Errorf("a shard of MaxValuesPerClient values does not decode: %v", err)
	}
}

// TestDefinitionNormalisesTOML pins what docs/definition.md says about
// values whose TOML spelling is not kept: the sign of nan, the offset
// +00:00 and -00:00, lower-case t and z and a space for T, trailing zeros
// of a fraction, digits beyond nanoseconds (truncated), and times without
// seconds. The text is the one the shard carries (§5 of the protocol).
func TestDefinitionNormalisesTOML(t *testing.T) {
	web := kfKey(t, 0x10).Public()
	for _, tc := range []struct {
		toml string
		kind frame.Kind
		text string
	}{
		{"+nan", frame.KindFloat, "nan"},
		{"-nan", frame.KindFloat, "nan"},
		{"+inf", frame.KindFloat, "inf"},
		{"-0.0", frame.KindFloat, "-0"},
		{"1E+06", frame.KindFloat, "1e+06"},
		{"1e6", frame.KindFloat, "1e+06"},
		{"1_000_000.0", frame.KindFloat, "1e+06"},
		{"0xff", frame.KindInt, "255"},
		{"1979-05-27T07:32:00+01:00", frame.KindDateTime, "1979-05-27T07:32:00+01:00"},
		{"1979-05-27T07:32:00+00:00", frame.KindDateTime, "1979-05-27T07:32:00Z"},
		{"1979-05-27T07:32:00-00:00", frame.KindDateTime, "1979-05-27T07:32:00Z"},
		{"1979-05-27t07:32:00z", frame.KindDateTime, "1979-05-27T07:32:00Z"},
		{"1979-05-27 07:32:00Z", frame.KindDateTime, "1979-05-27T07:32:00Z"},
		{"1979-05-27T07:32:00.1234567891Z", frame.KindDateTime, "1979-05-27T07:32:00.123456789Z"},
		{"1979-05-27T07:32:00.500Z", frame.KindDateTime, "1979-05-27T07:32:00.5Z"},
		{"1979-05-27T07:32:00.000+01:00", frame.KindDateTime, "1979-05-27T07:32:00+01:00"},
		{"1979-05-27T07:32Z", frame.KindDateTime, "1979-05-27T07:32:00Z"},
		{"1979-05-27t07:32:00", frame.KindLocalDateTime, "1979-05-27T07:32:00"},
		{"1979-05-27 07:32:00.1234567899", frame.KindLocalDateTime, "1979-05-27T07:32:00.123456789"},
		{"07:32", frame.KindLocalTime, "07:32:00"},
		{"07:32:00.000", frame.KindLocalTime, "07:32:00"},
	} {
		t.Run(tc.toml, func(t *testing.T) {
			src := fmt.Sprintf("[clients]\nweb = %q\n[web]\nv = %s\n", web, tc.toml)
			def, err := coffer.ParseDefinition([]byte(src))
			if err != nil {
				t.Fatal(err)
			}
			v := def.Clients[0].Values["v"]
			if got := string(v.AppendText(nil)); v.Kind != tc.kind || got != tc.text {
				t.Errorf("got %v %q, want %v %q", v.Kind, got, tc.kind, tc.text)
			}
		})
	}
	t.Run("nan signs share one wire form", func(t *testing.T) {
		var encs []string
		for _, n := range []string{"nan", "+nan", "-nan"} {
			def, err := coffer.ParseDefinition(fmt.Appendf(nil, "[clients]\nweb = %q\n[web]\nv = %s\n", web, n))
			if err != nil {
				t.Fatal(err)
			}
			enc, err := frame.EncodeShard(frame.Shard{"v": def.Clients[0].Values["v"]})
			if err != nil {
				t.Fatal(err)
			}
			encs = append(encs, fmt.Sprintf("%x", enc))
		}
		if encs[0] != encs[1] || encs[0] != encs[2] {
			t.Errorf("got %q, want one encoding", encs)
		}
	})
	t.Run("leap second refused", func(t *testing.T) {
		src := fmt.Sprintf("[clients]\nweb = %q\n[web]\nv = 1979-05-27T23:59:60Z\n", web)
		if _, err := coffer.ParseDefinition([]byte(src)); err == nil {
			t.Error("got no error, want one")
		}
	})
}
