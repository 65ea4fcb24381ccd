package frame_test

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/coffer-project/coffer/frame"
)

// allTypes lists every coffer/2 type with its documented body limit
// (docs/protocol.md §2).
var allTypes = []struct {
	t     frame.Type
	name  string
	limit int
}{
	{frame.TypeHello, "Hello", 1536},
	{frame.TypeLink, "Link", 1280},
	{frame.TypeGet, "Get", 4096},
	{frame.TypeOkGet, "OkGet", 65535},
	{frame.TypeBye, "Bye", 64},
	{frame.TypeKeyNotFound, "KeyNotFound", 160},
	{frame.TypeError, "Error", 64},
}

func header(t frame.Type, n int) []byte {
	return []byte{byte(n >> 8), byte(n), byte(t)}
}

// countingReader counts the bytes handed out, to show that Read stops
// after the header when it rejects one.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestTypeValues(t *testing.T) {
	for _, tc := range allTypes {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.t.String(); got != tc.name {
				t.Errorf("String() = %q, want %q", got, tc.name)
			}
			if !tc.t.Known() {
				t.Errorf("Known() = false, want true")
			}
			got, ok := tc.t.Limit()
			if !ok || got != tc.limit {
				t.Errorf("Limit() = %d, %v, want %d, true", got, ok, tc.limit)
			}
		})
	}
	known := 0
	for i := 0; i < 256; i++ {
		if frame.Type(i).Known() {
			known++
		}
	}
	if known != len(allTypes) {
		t.Errorf("got %d known types, want %d", known, len(allTypes))
	}
	if got, want := frame.Type(0x04).String(), "0x04"; got != want {
		t.Errorf("Type(0x04).String() = %q, want %q", got, want)
	}
}

func TestReadLimits(t *testing.T) {
	for _, tc := range allTypes {
		t.Run(tc.name+"/at-limit", func(t *testing.T) {
			body := bytes.Repeat([]byte{0xa5}, tc.limit)
			in := append(header(tc.t, tc.limit), body...)
			f, err := frame.Read(bytes.NewReader(in))
			if err != nil {
				t.Fatalf("Read: got %v, want nil", err)
			}
			if f.Type != tc.t || !bytes.Equal(f.Raw, in) || !bytes.Equal(f.Body(), body) {
				t.Errorf("got type %s and %d raw bytes, want %s and %d", f.Type, len(f.Raw), tc.t, len(in))
			}
		})
		t.Run(tc.name+"/zero", func(t *testing.T) {
			f, err := frame.Read(bytes.NewReader(header(tc.t, 0)))
			if err != nil || len(f.Body()) != 0 || len(f.Raw) != frame.HeaderSize {
				t.Errorf("got %d raw bytes, %v, want 3, nil", len(f.Raw), err)
			}
		})
		if tc.limit == frame.MaxBody {
			continue // the u16 cannot say limit+1
		}
		t.Run(tc.name+"/over-limit", func(t *testing.T) {
			in := append(header(tc.t, tc.limit+1), make([]byte, tc.limit+1)...)
			cr := &countingReader{r: bytes.NewReader(in)}
			_, err := frame.Read(cr)
			if !errors.Is(err, frame.ErrTooLong) {
				t.Fatalf("got %v, want ErrTooLong", err)
			}
			if cr.n != frame.HeaderSize {
				t.Errorf("got %d bytes consumed, want %d (the header only)", cr.n, frame.HeaderSize)
			}
		})
		t.Run(tc.name+"/max-length", func(t *testing.T) {
			cr := &countingReader{r: bytes.NewReader(header(tc.t, 0xffff))}
			_, err := frame.Read(cr)
			if !errors.Is(err, frame.ErrTooLong) {
				t.Fatalf("got %v, want ErrTooLong", err)
			}
			if cr.n != frame.HeaderSize {
				t.Errorf("got %d bytes consumed, want %d", cr.n, frame.HeaderSize)
			}
		})
	}
}

func TestReadUnknownType(t *testing.T) {
	for _, typ := range []byte{0x04, 0x05, 0x98, 0x9a, 0xa9, 0xab, 0xfe} {
		cr := &countingReader{r: bytes.NewReader([]byte{0, 1, typ, 0})}
		_, err := frame.Read(cr)
		if !errors.Is(err, frame.ErrUnknownType) {
			t.Errorf("type 0x%02x: got %v, want ErrUnknownType", typ, err)
		}
		if cr.n != frame.HeaderSize {
			t.Errorf("type 0x%02x: got %d bytes consumed, want %d", typ, cr.n, frame.HeaderSize)
		}
	}
}

func TestReadAllowed(t *testing.T) {
	in := append(header(frame.TypeLink, 1), 0)
	if _, err := frame.Read(bytes.NewReader(in), frame.TypeHello, frame.TypeGet); !errors.Is(err, frame.ErrUnexpected) {
		t.Errorf("Link where Hello or Get is allowed: got %v, want ErrUnexpected", err)
	}
	if _, err := frame.Read(bytes.NewReader(in), frame.TypeGet, frame.TypeLink); err != nil {
		t.Errorf("Link where Link is allowed: got %v, want nil", err)
	}
	// An unknown type is unknown even when the caller allows it.
	if _, err := frame.Read(bytes.NewReader([]byte{0, 0, 0x04}), frame.Type(0x04)); !errors.Is(err, frame.ErrUnknownType) {
		t.Errorf("allowed unknown type: got %v, want ErrUnknownType", err)
	}
	// The type is checked before the length, so a wrong type with a huge
	// length reports the type.
	if _, err := frame.Read(bytes.NewReader(header(frame.TypeOkGet, 0xffff)), frame.TypeHello); !errors.Is(err, frame.ErrUnexpected) {
		t.Errorf("OkGet of 0xffff where Hello is allowed: got %v, want ErrUnexpected", err)
	}
}

func TestReadTruncated(t *testing.T) {
	full := append(header(frame.TypeGet, 10), bytes.Repeat([]byte{1}, 10)...)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, io.EOF},
		{"header-1", full[:1], io.ErrUnexpectedEOF},
		{"header-2", full[:2], io.ErrUnexpectedEOF},
		{"body-0", full[:3], io.ErrUnexpectedEOF},
		{"body-1", full[:4], io.ErrUnexpectedEOF},
		{"body-9", full[:12], io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := frame.Read(bytes.NewReader(tc.in))
			if err != tc.want {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestReadErrorSticky checks that a transport error inside the body is
// passed through, not turned into a success.
func TestReadTransportError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(bytes.NewReader(header(frame.TypeGet, 5)), &errReader{boom})
	if _, err := frame.Read(r); err != boom {
		t.Errorf("got %v, want %v", err, boom)
	}
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

func TestReadSequence(t *testing.T) {
	var buf bytes.Buffer
	for _, tc := range allTypes {
		f, err := frame.New(tc.t, []byte(tc.name))
		if err != nil {
			t.Fatalf("New(%s): %v", tc.name, err)
		}
		buf.Write(f.Raw)
	}
	for _, tc := range allTypes {
		f, err := frame.Read(&buf)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if f.Type != tc.t || string(f.Body()) != tc.name {
			t.Errorf("got %s %q, want %s %q", f.Type, f.Body(), tc.t, tc.name)
		}
	}
	if _, err := frame.Read(&buf); err != io.EOF {
		t.Errorf("after the last frame: got %v, want io.EOF", err)
	}
}

func TestNew(t *testing.T) {
	for _, tc := range allTypes {
		t.Run(tc.name, func(t *testing.T) {
			f, err := frame.New(tc.t, make([]byte, tc.limit))
			if err != nil {
				t.Fatalf("at limit: got %v, want nil", err)
			}
			if got, want := f.Raw[:3], header(tc.t, tc.limit); !bytes.Equal(got, want) {
				t.Errorf("header: got %x, want %x", got, want)
			}
			if _, err := frame.New(tc.t, make([]byte, tc.limit+1)); !errors.Is(err, frame.ErrTooLong) {
				t.Errorf("limit+1: got %v, want ErrTooLong", err)
			}
		})
	}
	if _, err := frame.New(frame.Type(0xfe), nil); !errors.Is(err, frame.ErrUnknownType) {
		t.Errorf("unknown type: got %v, want ErrUnknownType", err)
	}
}

// TestAppendHeaderFinish builds each type's frame in place at its limit
// and one past it, after bytes already in the buffer, and checks the
// result is byte for byte what New builds.
func TestAppendHeaderFinish(t *testing.T) {
	prefix := []byte("earlier")
	for _, tc := range allTypes {
		t.Run(tc.name, func(t *testing.T) {
			body := bytes.Repeat([]byte{0xa5}, tc.limit)
			b := frame.AppendHeader(append([]byte(nil), prefix...), tc.t)
			b, err := frame.Finish(append(b, body...), len(prefix))
			if err != nil {
				t.Fatalf("at limit: got %v, want nil", err)
			}
			want, err := frame.New(tc.t, body)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b[:len(prefix)], prefix) || !bytes.Equal(b[len(prefix):], want.Raw) {
				t.Errorf("got %x..., want %x...", b[:len(prefix)+3], append(prefix, want.Raw[:3]...))
			}
			b = frame.AppendHeader(nil, tc.t)
			if _, err := frame.Finish(append(b, body...), 0); err != nil {
				t.Fatalf("at limit, start 0: got %v, want nil", err)
			}
			if _, err := frame.Finish(append(append(b, body...), 0), 0); !errors.Is(err, frame.ErrTooLong) {
				t.Errorf("limit+1: got %v, want ErrTooLong", err)
			}
		})
	}
	t.Run("unknown type", func(t *testing.T) {
		if _, err := frame.Finish(frame.AppendHeader(nil, frame.Type(0xfe)), 0); !errors.Is(err, frame.ErrUnknownType) {
			t.Errorf("got %v, want ErrUnknownType", err)
		}
	})
	t.Run("no header", func(t *testing.T) {
		if _, err := frame.Finish([]byte{0, 0}, 0); err == nil {
			t.Error("got nil, want an error")
		}
	})
}

// TestReadAllocation checks that a rejected header allocates nothing near
// the declared length, and an accepted one no more than header + body.
func TestReadAllocation(t *testing.T) {
	const rounds = 200
	measure := func(in []byte) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := 0; i < rounds; i++ {
			frame.Read(bytes.NewReader(in))
		}
		runtime.ReadMemStats(&after)
		return (after.TotalAlloc - before.TotalAlloc) / rounds
	}
	if got := measure(header(frame.TypeHello, 0xffff)); got > 1024 {
		t.Errorf("Hello declaring 0xffff bytes: got %d bytes allocated per Read, want < 1024", got)
	}
	if got := measure(header(frame.Type(0x98), 0xffff)); got > 1024 {
		t.Errorf("unknown type declaring 0xffff bytes: got %d bytes allocated per Read, want < 1024", got)
	}
	// Truncated OkGet: the body buffer is sized by the header (≤ limit);
	// the runtime rounds a large object up to whole 8 KiB pages.
	const bound = 0xffff + 3 + 8192 + 1024
	if got := measure(header(frame.TypeOkGet, 0xffff)); got > bound {
		t.Errorf("truncated OkGet: got %d bytes allocated per Read, want ≤ %d", got, bound)
	}
}
