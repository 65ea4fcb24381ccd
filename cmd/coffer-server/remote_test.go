package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestRemoteFetch: the fetch's answers to what an origin can do.
func TestRemoteFetch(t *testing.T) {
	var status int
	var body []byte
	var etag, location string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if location != "" {
			http.Redirect(w, r, location, http.StatusFound)
			return
		}
		if etag != "" {
			w.Header().Set("ETag", etag)
			if r.Header.Get("If-None-Match") == etag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		w.WriteHeader(status)
		w.Write(body)
	}))
	defer ts.Close()
	u, _ := url.Parse(ts.URL + "/prod.sealed?X-Signature=s3cr3t")
	rs := newRemoteSource(u)
	ctx := context.Background()

	status, body, etag = 200, []byte("version one"), `"v1"`
	got, gotETag, _, err := rs.fetch(ctx)
	if err != nil || string(got) != "version one" || gotETag != `"v1"` {
		t.Fatalf("first fetch: %q %q %v", got, gotETag, err)
	}
	rs.remember(gotETag, got, reloadResult{Accepted: true, Serial: 1})
	if _, _, last, err := rs.fetch(ctx); !errors.Is(err, errNotModified) || last.Serial != 1 {
		t.Errorf("same ETag: got %v, last %+v; want errNotModified and the last outcome", err, last)
	}
	etag = "" // an origin without ETags: the same body is not modified either
	if _, _, _, err := rs.fetch(ctx); !errors.Is(err, errNotModified) {
		t.Errorf("same body without ETag: got %v, want errNotModified", err)
	}
	for _, tt := range []struct {
		name     string
		status   int
		body     []byte
		location string
		want     string
	}{
		{"server error", 503, nil, "", "the origin answered 503"},
		{"not found", 404, nil, "", "the origin answered 404"},
		{"redirect to plain http elsewhere", 200, nil, "http://example.org/x", "only for a loopback host"},
		{"too large", 200, make([]byte, maxFetchBytes+1), "", "limit of 100663296"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body, location = tt.status, tt.body, tt.location
			_, _, _, err := rs.fetch(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q shows the URL's query", err)
			}
		})
	}
	location = ""
	status, body = 200, []byte("version two")
	if got, _, _, err := rs.fetch(ctx); err != nil || string(got) != "version two" {
		t.Errorf("a new version: %q %v", got, err)
	}
	if r := redactedURL(u); strings.Contains(r, "s3cr3t") || !strings.HasSuffix(r, "/prod.sealed?…") {
		t.Errorf("redactedURL: %q", r)
	}
}
