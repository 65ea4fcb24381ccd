package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/config"
	"github.com/coffer-project/coffer/shard"
)

// daemon is the running server's loop: signals, and loads asked for by
// the admin socket or the definition poller, one at a time.
type daemon struct {
	log *slog.Logger
	sd  *notifier
	srv *coffer.Server
	ld  *loader   // the first definition's: the top-level fields of status and metrics
	lds []*loader // every definition's, in the config's order
	// unserved are the definitions whose store did not open at start.
	unserved []definitionStatus
	audit    *shard.Store
	lock     *lockFile
	sigs     *signals
	live     *liveStats
	feed     *auditFeed
	dataDir  string
	pollers  map[*loader]*poller // of the definitions that are URLs
	reloads  chan reloadRequest
	done     chan struct{} // closed once the loop has returned
}

func (d *daemon) run(listeners []net.Listener, cfg *config.Server) error {
	serveErr := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() { serveErr <- d.srv.Serve(l) }()
	}
	d.ready()
	if d.sigs.hup {
		d.sigs.hup = false
		d.hup() // the file may have changed after start-up read it
	}
	var err error
loop:
	for {
		select {
		case req := <-d.reloads:
			req.reply <- d.reload(req.ld, req.file)
		case sig := <-d.sigs.ch:
			if sig == syscall.SIGHUP {
				d.hup()
				continue
			}
			d.log.Info("shutting down", "signal", sig.String(), "grace", cfg.Limits.ShutdownTimeout.String())
			break loop
		case err = <-serveErr:
			d.log.Error("listener failed; shutting down", "err", err)
			break loop
		}
	}
	d.notify("STOPPING=1")
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Limits.ShutdownTimeout)
	defer cancel()
	if serr := d.srv.Shutdown(ctx); serr != nil {
		d.log.Warn("sessions still running at the deadline were closed", "err", serr)
	}
	return err
}

// hup reloads on SIGHUP: each file now, and for a URL a poll now.
func (d *daemon) hup() {
	for _, ld := range d.lds {
		if p := d.pollers[ld]; p != nil {
			select {
			case p.kick <- struct{}{}:
			default: // a poll is already due
			}
			continue
		}
		d.reload(ld, nil)
	}
}

// reload loads ld's sealed file again (SIGHUP, coffer-server reload), or
// file as fetched from its definition URL, and returns the outcome. The
// other definitions keep serving, untouched.
func (d *daemon) reload(ld *loader, file []byte) reloadResult {
	d.notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUsec()))
	ld.log.Info("reload requested", "path", ld.path)
	var err error
	if file != nil {
		err = ld.loadSealed(file)
	} else {
		err = ld.loadFile()
	}
	switch {
	case err == nil:
	case errors.Is(err, errUnchanged):
		ld.log.Info("reload: the sealed definition is already current")
		ld.checkKept() // the file may have been put back to repair the kept copy
	default:
		ld.log.Error("reload: sealed definition refused; still serving the current one", "reason", err)
	}
	r := loadResult(ld, err)
	d.live.loaded(r)
	d.ready()
	return r
}

// loader returns the loader of the definition named name.
func (d *daemon) loader(name string) *loader {
	for _, ld := range d.lds {
		if ld.name == name {
			return ld
		}
	}
	return nil
}

// ready records the served version in the lock file and tells systemd.
func (d *daemon) ready() {
	status := "serving nothing (no definition loaded)"
	version := ""
	if v := d.ld.servedVersion(); v != nil {
		status = fmt.Sprintf("serving serial %d", v.Serial)
		version = fmt.Sprintf("%d %x", v.Serial, v.Hash)
	}
	var defs [][2]string // every served definition's version, for check
	for _, ld := range d.lds {
		if v := ld.servedVersion(); v != nil {
			defs = append(defs, [2]string{ld.name, fmt.Sprintf("%d %x", v.Serial, v.Hash)})
		}
	}
	if len(d.lds) > 1 {
		var parts []string
		for _, ld := range d.lds {
			if v := ld.servedVersion(); v != nil {
				parts = append(parts, fmt.Sprintf("%s serial %d", ld.name, v.Serial))
			} else {
				parts = append(parts, ld.name+" nothing")
			}
		}
		status = "serving " + strings.Join(parts, ", ")
	}
	if err := d.lock.write("serve", version, defs...); err != nil {
		d.log.Warn("updating the lock file", "err", err)
	}
	d.notify("READY=1\nSTATUS=" + status)
}

func (d *daemon) notify(state string) {
	if err := d.sd.notify(state); err != nil {
		d.log.Warn("systemd notification failed", "err", err, "state", strings.SplitN(state, "\n", 2)[0])
	}
}

// startAdmin serves the admin socket bound by bindAdmin until d.done.
func (d *daemon) startAdmin(b *bindings, group string) *adminServer {
	if b.admin == nil {
		return nil
	}
	a := newAdminServer(b.admin, b.adminPath, b.policy, d.log, d.handleAdmin)
	b.admin = nil // a owns it now
	go a.serve(d.done)
	d.log.Info("admin socket", "path", a.path, "group", group)
	return a
}

// loadResult describes a load's outcome: err is loadFile's.
func loadResult(ld *loader, err error) reloadResult {
	r := reloadResult{Accepted: err == nil || errors.Is(err, errUnchanged), Changed: err == nil,
		Definition: ld.name, Source: ld.path, Time: time.Now()}
	if !r.Accepted {
		r.Reason = err.Error()
	}
	if v := ld.servedVersion(); v != nil {
		r.Serial, r.Hash = v.Serial, hex.EncodeToString(v.Hash[:])
	}
	ld.setLastLoad(r)
	return r
}
