package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/coffer-project/coffer/frame"
)

// The admin protocol (docs/server.md, "Admin socket"): the client sends
// one JSON object on one line; the server answers with JSON lines. A
// command's answer is one adminResponse, except audit, which sends one
// line per record and then a last line with End set (follow never ends
// by itself). Any error is one line with Error set, and ends the answer.

// Admin protocol limits.
const (
	// maxAdminRequestBytes bounds a request line: a request is a command
	// and three small fields, so a peer cannot make the server buffer more.
	maxAdminRequestBytes = 1024
	// maxAdminResponseBytes bounds one response line the client reads: an
	// inspect of 100,000 clients with their names is well under it.
	maxAdminResponseBytes = 256 << 20
	// adminRequestTimeout bounds how long a connected peer may take to
	// send its request, so a silent peer cannot hold a slot.
	adminRequestTimeout = 5 * time.Second
	// adminWriteTimeout bounds each response write, so a peer that stops
	// reading (audit --follow included) cannot hold a slot or a record.
	adminWriteTimeout = 10 * time.Second
	// maxAdminConns bounds the admin connections served at once; more
	// get an error line and are closed.
	maxAdminConns = 16
	// maxAdminAuditLimit bounds audit's limit; 0 means all, which the
	// store's own retention bounds.
	maxAdminAuditLimit = 10_000_000
)

// Admin commands.
const (
	adminStatus  = "status"
	adminReload  = "reload"
	adminAudit   = "audit"
	adminInspect = "inspect"
)

// adminRequest is one request line.
type adminRequest struct {
	Cmd    string    `json:"cmd"`
	Since  time.Time `json:"since,omitzero"`  // audit: records at or after
	Limit  int       `json:"limit,omitempty"` // audit: newest N, 0 all
	Follow bool      `json:"follow,omitempty"`
	// Definition names the one definition to reload; empty: every one.
	Definition string `json:"definition,omitempty"`
}

// errAdminRequest is the class of every refused request; the text sent
// back never quotes the request.
var errAdminRequest = errors.New("admin: bad request")

// parseAdminRequest parses and checks one request line (without its
// newline): exactly one JSON object of known fields, a known command,
// and audit's fields only on audit. Its errors never quote the input.
func parseAdminRequest(line []byte) (adminRequest, error) {
	var r adminRequest
	if len(line) > maxAdminRequestBytes {
		return r, fmt.Errorf("%w: longer than %d bytes", errAdminRequest, maxAdminRequestBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return adminRequest{}, fmt.Errorf("%w: not one JSON object of known fields", errAdminRequest)
	}
	if _, err := dec.Token(); err != io.EOF {
		return adminRequest{}, fmt.Errorf("%w: data after the request", errAdminRequest)
	}
	switch r.Cmd {
	case adminStatus, adminReload, adminInspect:
		if !r.Since.IsZero() || r.Limit != 0 || r.Follow {
			return adminRequest{}, fmt.Errorf("%w: since, limit and follow are for audit only", errAdminRequest)
		}
		if r.Definition != "" && (r.Cmd != adminReload || !frame.ValidDefinitionName(r.Definition)) {
			return adminRequest{}, fmt.Errorf("%w: definition is a definition name, for reload only", errAdminRequest)
		}
	case adminAudit:
		if r.Definition != "" {
			return adminRequest{}, fmt.Errorf("%w: definition is a definition name, for reload only", errAdminRequest)
		}
		if r.Limit < 0 || r.Limit > maxAdminAuditLimit {
			return adminRequest{}, fmt.Errorf("%w: limit out of range", errAdminRequest)
		}
	default:
		return adminRequest{}, fmt.Errorf("%w: unknown command", errAdminRequest)
	}
	return r, nil
}

// adminResponse is one response line. Exactly one of the payload fields
// is set on a line without Error.
type adminResponse struct {
	Error   string         `json:"error,omitempty"`
	Status  *statusReport  `json:"status,omitempty"`
	Reload  *reloadResult  `json:"reload,omitempty"`
	Reloads []reloadResult `json:"reloads,omitempty"` // reload of several definitions: one each; Reload is then the first refused, or the first
	Inspect *inspectReport `json:"inspect,omitempty"`
	Record  *auditLine     `json:"record,omitempty"`
	Skipped uint64         `json:"skipped,omitempty"` // follow: records not sent because the peer was slow
	End     bool           `json:"end,omitempty"`     // audit: no more records
}

// reloadResult is the outcome of one load (docs/server.md, "Reload").
type reloadResult struct {
	Definition string    `json:"definition,omitempty"` // the definition's name
	Accepted   bool      `json:"accepted"`             // the definition served is the one loaded, or already was
	Changed    bool      `json:"changed"`              // a new definition was imported
	Serial     uint64    `json:"serial,omitempty"`     // the serial served after the load
	Hash       string    `json:"hash,omitempty"`       // its hash, hex
	Reason     string    `json:"reason,omitempty"`     // why the definition was refused
	Source     string    `json:"source,omitempty"`     // the file or URL loaded
	Time       time.Time `json:"time,omitzero"`        // when the load ended
}

// inspectReport is inspect's answer, the same as its --json output.
type inspectReport struct {
	// Name and Trusted are set in the entries of Definitions: the
	// definition's name and the author keys trusted for it.
	Name       string          `json:"name,omitempty"`
	Trusted    []string        `json:"trusted,omitempty"`
	Condition  string          `json:"condition"`
	Serial     uint64          `json:"serial,omitempty"`
	Hash       string          `json:"hash,omitempty"`
	Generation uint64          `json:"generation,omitempty"`
	Clients    []inspectClient `json:"clients"`
	Values     int             `json:"values"`
	ShardBytes int64           `json:"shard_bytes"`
	DiskBytes  int64           `json:"disk_bytes"`
	LSMBytes   int64           `json:"lsm_bytes"`
	VLogBytes  int64           `json:"vlog_bytes"`
	Audit      int             `json:"audit_records"`
	Dropped    uint64          `json:"audit_dropped"`
	AuditLost  uint64          `json:"audit_lost,omitempty"` // records lost to damage or to a kill, found at this open
	Kept       string          `json:"kept_file,omitempty"`  // the kept sealed file's state when not sound
	// Definitions, with several definitions or a named one, reports each
	// definition's store; the fields above are then the data
	// directory's own store (the audit trail, and the default definition
	// if there is one).
	Definitions []*inspectReport `json:"definitions,omitempty"`
}
