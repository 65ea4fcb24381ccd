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
)

// daemon is the running server's loop: signals, and loads asked for by
// the admin socket or the definition poller, one at a time.
type daemon struct {
	log     *slog.Logger
	sd      *notifier
	srv     *coffer.Server
	ld      *loader
	lock    *lockFile
	sigs    *signals
	live    *liveStats
	feed    *auditFeed
	dataDir string
	poller  *poller // when the definition is a URL
	reloads chan reloadRequest
	done    chan struct{} // closed once the loop has returned
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
			req.reply <- d.reload(req.file)
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

// hup reloads on SIGHUP: the file now, or for a URL a poll now.
func (d *daemon) hup() {
	if d.poller != nil {
		select {
		case d.poller.kick <- struct{}{}:
		default: // a poll is already due
		}
		return
	}
	d.reload(nil)
}

// reload loads the sealed file again (SIGHUP, coffer-server reload), or
// file as fetched from the definition URL, and returns the outcome.
func (d *daemon) reload(file []byte) reloadResult {
	d.notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUsec()))
	d.log.Info("reload requested", "path", d.ld.path)
	var err error
	if file != nil {
		err = d.ld.loadSealed(file)
	} else {
		err = d.ld.loadFile()
	}
	switch {
	case err == nil:
	case errors.Is(err, errUnchanged):
		d.log.Info("reload: the sealed definition is already current")
		d.ld.checkKept() // the file may have been put back to repair the kept copy
	default:
		d.log.Error("reload: sealed definition refused; still serving the current one", "reason", err)
	}
	r := loadResult(d.ld, err)
	d.live.loaded(r)
	d.ready()
	return r
}

// ready records the served version in the lock file and tells systemd.
func (d *daemon) ready() {
	status := "serving nothing (no definition loaded)"
	version := ""
	if v := d.ld.servedVersion(); v != nil {
		status = fmt.Sprintf("serving serial %d", v.Serial)
		version = fmt.Sprintf("%d %x", v.Serial, v.Hash)
	}
	if err := d.lock.write("serve", version); err != nil {
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
		Source: ld.path, Time: time.Now()}
	if !r.Accepted {
		r.Reason = err.Error()
	}
	if v := ld.servedVersion(); v != nil {
		r.Serial, r.Hash = v.Serial, hex.EncodeToString(v.Hash[:])
	}
	return r
}
