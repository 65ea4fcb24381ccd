package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-project/coffer/cmd/internal/e2e"
	"github.com/coffer-project/coffer/coffer"
)

// origin is a test web server publishing one sealed definition to
// several replicas, each on its own path so a test can cut one off or
// show it something else. It answers If-None-Match with 304.
type origin struct {
	mu        sync.Mutex
	body      []byte
	down      map[string]bool   // replica path answers 503
	override  map[string][]byte // replica path serves this instead
	notModded atomic.Int64      // 304s answered
	gets      atomic.Int64
	log       []string
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.gets.Add(1)
	o.mu.Lock()
	o.log = append(o.log, fmt.Sprintf("%s %s inm=%q", time.Now().UTC().Format(time.StampMicro), r.URL.Path, r.Header.Get("If-None-Match")))
	body, down := o.body, o.down[r.URL.Path]
	if b, ok := o.override[r.URL.Path]; ok {
		body = b
	}
	o.mu.Unlock()
	if down {
		http.Error(w, "partitioned", http.StatusServiceUnavailable)
		return
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	if r.Header.Get("If-None-Match") == etag {
		o.notModded.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", etag)
	w.Write(body)
}

func (o *origin) set(f func(o *origin)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f(o)
}

var (
	clientBinOnce sync.Once
	clientBin     string
	clientBinErr  error
)

// buildClient builds coffer-client once for the replica test.
func buildClient(t *testing.T) string {
	t.Helper()
	clientBinOnce.Do(func() {
		clientBin, clientBinErr = e2e.Build(filepath.Dir(serverBin), "coffer-client", "../coffer-client")
	})
	if clientBinErr != nil {
		t.Fatal(clientBinErr)
	}
	return clientBin
}

// TestReplicas: three real servers sharing one key follow one origin. A
// new serial reaches all three within the poll interval; with one killed
// the client fails over; a replica cut off from the origin stays behind
// and a client with --state refuses it rather than go back; an origin
// serving garbage, an older serial or a file for another server changes
// nothing.
func TestReplicas(t *testing.T) {
	const poll = time.Second
	f := newFixture(t, "web")
	o := &origin{down: map[string]bool{}, override: map[string][]byte{}}
	o.body = f.Next(t, f.defTOML("one", 0))
	ts := httptest.NewServer(o)
	defer ts.Close()

	names := []string{"a", "b", "c"}
	procs := map[string]*proc{}
	for _, n := range names {
		args := []string{"--key", f.KeyFile, "--data-dir", filepath.Join(f.Dir, "data-"+n),
			"--definition", ts.URL + "/" + n + "/prod.sealed", "--definition-poll", poll.String(),
			"--trusted", f.Author.Public().String(), "--log-level", "debug", "--config", f.Conf,
			"--listen", "127.0.0.1:0"}
		p := f.launch(t, nil, nil, args...)
		p.WaitReady()
		p.WaitListening()
		p.Logs.Wait(t, 0, `msg="serving definition" serial=1`)
		procs[n] = p
	}

	// Every replica polls, conditionally: each gets a 304 for serial 1.
	deadline := time.Now().Add(20 * poll)
	for o.notModded.Load() < int64(len(names)) {
		if time.Now().After(deadline) {
			t.Fatalf("the origin answered %d 304s in %v: the replicas do not poll with If-None-Match", o.notModded.Load(), 20*poll)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A new serial reaches every replica within the poll interval.
	marks := map[string]int{}
	for _, n := range names {
		marks[n] = procs[n].Logs.Count()
	}
	two := f.Next(t, f.defTOML("two", 0))
	start := time.Now()
	o.set(func(o *origin) { o.body = two })
	var fetched, served []time.Duration
	for _, n := range names {
		procs[n].Logs.Wait(t, marks[n], `msg="serving definition" serial=2`)
		served = append(served, time.Since(start))
		fetched = append(fetched, logTime(t, procs[n].Logs.Since(marks[n]), `msg="reload requested"`).Sub(start))
	}
	t.Logf("serial 2 published; fetched by the replicas after %v, served after %v (poll interval %v)", fetched, served, poll)
	for i, d := range fetched {
		// Timers and the request are allowed 2s on a machine busy with
		// other tests (a load average of 15 on 2 cores delayed one by
		// 1.7s); a missed poll would take a whole interval more.
		if d > poll+2*time.Second {
			t.Errorf("replica %s fetched serial 2 after %v, want within the poll interval %v", names[i], d, poll)
		}
	}

	// The client fails over from a killed replica, and remembers serial 2.
	clientKey := filepath.Join(f.Dir, "web.key")
	if err := coffer.WriteKeyFile(clientKey, f.Clients["web"]); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(f.Dir, "client.state")
	client := func(servers ...string) (string, int) {
		t.Helper()
		out, errOut, code := e2e.Run(t, buildClient(t), nil, f.outputs.Record, "get", "--server", strings.Join(servers, ","),
			"--server-key", f.Server.Public().String(), "--key", clientKey, "--state", state, "--timeout", "2s", "a")
		return out + errOut, code
	}
	stateSerial := func() int {
		t.Helper()
		b, err := os.ReadFile(state)
		if err != nil {
			t.Fatal(err)
		}
		fields := strings.Fields(string(b))
		n, _ := strconv.Atoi(fields[len(fields)-1])
		return n
	}
	addrs := []string{procs["a"].Addr, procs["b"].Addr, procs["c"].Addr}
	procs["a"].Kill()
	for i := range 5 {
		if out, code := client(addrs...); code != 0 || !strings.Contains(out, "two-a") {
			t.Fatalf("fetch %d with replica a killed: exit %d\n%s", i, code, out)
		}
	}
	if got := stateSerial(); got != 2 {
		t.Fatalf("client state: serial %d, want 2", got)
	}

	// Replica b is cut off from the origin and stays at serial 2 while c
	// moves to 3; a client that has seen 3 refuses b and does not go back.
	o.set(func(o *origin) { o.down["/b/prod.sealed"] = true })
	markB, markC := procs["b"].Logs.Count(), procs["c"].Logs.Count()
	three := f.Next(t, f.defTOML("three", 0))
	o.set(func(o *origin) { o.body = three })
	procs["c"].Logs.Wait(t, markC, `msg="serving definition" serial=3`)
	procs["b"].Logs.Wait(t, markB, `polling the definition URL failed.*503`)
	if out, code := client(procs["c"].Addr); code != 0 || !strings.Contains(out, "three-a") || stateSerial() != 3 {
		t.Fatalf("fetch from c: exit %d, state %d\n%s", code, stateSerial(), out)
	}
	out, errOut, code := f.run(t, nil, "status", "--config", f.Conf, "--data-dir", filepath.Join(f.Dir, "data-b"))
	if code != 0 || !strings.Contains(out, "serving:     serial 2") || !strings.Contains(out, "failed: fetching http://127.0.0.1") {
		t.Errorf("status of the replica behind: exit %d\n%s%s\nwant serial 2 and the failed poll", code, out, errOut)
	}
	t.Logf("status of the replica behind:\n%s", out)
	if out, code := client(procs["b"].Addr); code != 1 || strings.Contains(out, "two-a") {
		t.Errorf("fetch from the replica behind: exit %d\n%s\nwant exit 1 and no value", code, out)
	}
	if got := stateSerial(); got != 3 {
		t.Errorf("client state after the replica behind: serial %d, want 3", got)
	}
	if out, code := client(procs["b"].Addr, procs["c"].Addr); code != 0 || !strings.Contains(out, "three-a") {
		t.Errorf("fetch from b and c: exit %d\n%s\nwant c's serial 3", code, out)
	}

	// What the origin serves next changes nothing on c unless it is a
	// valid newer definition for this server.
	other := e2e.GenKey(t)
	for _, tt := range []struct {
		name, reason string
		body         []byte
	}{
		{"garbage", "reason=", []byte("<html>503 Service Unavailable</html>\n")},
		{"older serial", `not above the current serial 3`, two},
		{"another server's file", "reason=", e2e.Seal(t, f.Author, other, 4, f.Last, f.defTOML("other", 0))},
	} {
		mark := procs["c"].Logs.Count()
		o.set(func(o *origin) { o.override["/c/prod.sealed"] = tt.body })
		line, _ := procs["c"].Logs.Wait(t, mark, `sealed definition refused`)
		if !strings.Contains(line, tt.reason) {
			t.Errorf("%s: got %q, want a refusal with %q", tt.name, line, tt.reason)
		}
		r, err := fetchFrom(procs["c"].Addr, f.Server.Public(), f.Clients["web"])
		if err != nil || r.Version.Serial != 3 || wantShard(r, "three") != nil {
			t.Errorf("%s: c serves %v, %v; want serial 3 unchanged", tt.name, r, err)
		}
	}
	if t.Failed() {
		t.Logf("origin log:\n%s", strings.Join(o.log, "\n"))
	}
	// reload on c fetches now and waits: the origin still serves the
	// other server's file, so the refusal is reported; once the origin
	// serves serial 3 again, reload says it is already current.
	dataC := []string{"--config", f.Conf, "--data-dir", filepath.Join(f.Dir, "data-c")}
	if out, errOut, code := f.run(t, nil, append([]string{"reload"}, dataC...)...); code != 1 || !strings.Contains(errOut, "definition refused") {
		t.Errorf("reload with the origin serving another server's file: exit %d\n%s%s", code, out, errOut)
	}
	o.set(func(o *origin) { delete(o.override, "/c/prod.sealed") })
	if out, errOut, code := f.run(t, nil, append([]string{"reload"}, dataC...)...); code != 0 || !strings.Contains(out, "already current: serving serial 3") {
		t.Errorf("reload with the origin serving serial 3: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("origin: %d requests, %d answered 304", o.gets.Load(), o.notModded.Load())
	for _, n := range []string{"b", "c"} {
		procs[n].stop()
	}
}

// logTime returns the time= of the first line matching re.
func logTime(t *testing.T, lines []string, re string) time.Time {
	t.Helper()
	m := regexp.MustCompile(`^time=(\S+) .*` + re)
	for _, l := range lines {
		if sm := m.FindStringSubmatch(l); sm != nil {
			ts, err := time.Parse(time.RFC3339Nano, sm[1])
			if err != nil {
				t.Fatal(err)
			}
			return ts
		}
	}
	t.Fatalf("no line matching %q in\n%s", re, strings.Join(lines, "\n"))
	return time.Time{}
}
