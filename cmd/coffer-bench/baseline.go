package main

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// Limits of the baseline servers; they only ever talk to our own loadgen,
// but a stuck peer must not hold a goroutine for ever.
const (
	baselineConnTimeout = 10 * time.Second
	maxShardsFileBytes  = 1 << 30
	maxShardBytes       = 1 << 24
)

// certFiles names the PEM files of the TLS baseline: a CA, the server's
// certificate and key (for 127.0.0.1), and one client certificate and key
// for mutual TLS. All keys are Ed25519.
type certFiles struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

// writeCerts makes a CA and two leaf certificates in dir, with keys in
// 0600 files.
func writeCerts(dir string) (certFiles, error) {
	cf := certFiles{
		CA:         filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server-cert.pem"),
		ServerKey:  filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client-cert.pem"),
		ClientKey:  filepath.Join(dir, "client-key.pem"),
	}
	now := time.Now()
	caPub, caPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return cf, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "coffer-bench CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caPub, caPriv)
	if err != nil {
		return cf, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return cf, err
	}
	if err := writePEM(cf.CA, "CERTIFICATE", caDER, 0o644); err != nil {
		return cf, err
	}
	if err := writeLeaf(ca, caPriv, 2, "127.0.0.1", x509.ExtKeyUsageServerAuth, cf.ServerCert, cf.ServerKey); err != nil {
		return cf, err
	}
	err = writeLeaf(ca, caPriv, 3, "bench-client", x509.ExtKeyUsageClientAuth, cf.ClientCert, cf.ClientKey)
	return cf, err
}

// writeLeaf makes a certificate for cn signed by ca, valid as long as ca,
// for usage (a server certificate is for 127.0.0.1), and writes it to
// certPath (0644) and its key to keyPath (0600).
func writeLeaf(ca *x509.Certificate, caKey ed25519.PrivateKey, serial int64, cn string, usage x509.ExtKeyUsage, certPath, keyPath string) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    ca.NotBefore,
		NotAfter:     ca.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		return err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	return writePEM(keyPath, "PRIVATE KEY", pk, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: typ, Bytes: der}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func loadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("coffer-bench: no certificate in %s", path)
	}
	return pool, nil
}

// baselineTLSConfig is the TLS 1.3 server configuration of the baseline:
// Go's default key exchange groups (X25519MLKEM768 first, as Go 1.24 and
// later negotiate with each other), or X25519 alone with x25519Only; an
// Ed25519 certificate; and no session tickets, so that every connection
// is a full handshake, as every coffer/2 session is.
func baselineTLSConfig(cf certFiles, mutual, x25519Only bool) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(cf.ServerCert, cf.ServerKey)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		Certificates:           []tls.Certificate{cert},
		MinVersion:             tls.VersionTLS13,
		MaxVersion:             tls.VersionTLS13,
		SessionTicketsDisabled: true,
	}
	if x25519Only {
		cfg.CurvePreferences = []tls.CurveID{tls.X25519}
	}
	if mutual {
		pool, err := loadPool(cf.CA)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// writeShards writes the encoded shards, indexed by client, as a u32
// count followed by u32-length-prefixed byte strings.
func writeShards(path string, shards [][]byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(shards)))
	w.Write(n[:])
	for _, s := range shards {
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		w.Write(n[:])
		w.Write(s)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readShards(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) > maxShardsFileBytes || len(b) < 4 {
		return nil, fmt.Errorf("coffer-bench: bad shards file %s", path)
	}
	count := binary.BigEndian.Uint32(b)
	b = b[4:]
	shards := make([][]byte, 0, min(int(count), len(b)/4))
	for range count {
		if len(b) < 4 {
			return nil, fmt.Errorf("coffer-bench: truncated shards file %s", path)
		}
		l := binary.BigEndian.Uint32(b)
		if l > maxShardBytes || int(l) > len(b)-4 {
			return nil, fmt.Errorf("coffer-bench: truncated shards file %s", path)
		}
		shards = append(shards, b[4:4+l])
		b = b[4+l:]
	}
	return shards, nil
}

// runBaselineServer is the hidden "tlsserver" and "tcpserver"
// subcommands: a server process for the baseline. tlsserver answers a
// 4-byte big-endian client index with the length-prefixed encoded shard
// of that client, over TLS 1.3 (mutual with -mutual); tcpserver accepts
// and closes, the floor of any protocol over a new TCP connection. It
// prints "listening ADDR" on stdout and serves until stdin closes or a
// signal arrives.
func runBaselineServer(name string, args []string) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var cf certFiles
	addr := fs.String("listen", "127.0.0.1:0", "listen address")
	shardsPath := fs.String("shards", "", "shards file (tlsserver)")
	mutual := fs.Bool("mutual", false, "require and verify a client certificate (tlsserver)")
	x25519Only := fs.Bool("x25519-only", false, "offer X25519 alone, not Go's default X25519MLKEM768 first (tlsserver)")
	fs.StringVar(&cf.CA, "ca", "", "CA certificate (PEM)")
	fs.StringVar(&cf.ServerCert, "cert", "", "server certificate (PEM)")
	fs.StringVar(&cf.ServerKey, "key", "", "server key (PEM)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var handle func(net.Conn)
	if name == "tcpserver" {
		handle = func(c net.Conn) { c.Close() }
	} else {
		shards, err := readShards(*shardsPath)
		if err != nil {
			return err
		}
		cfg, err := baselineTLSConfig(cf, *mutual, *x25519Only)
		if err != nil {
			return err
		}
		handle = func(c net.Conn) { serveTLS(tls.Server(c, cfg), shards) }
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Printf("listening %s\n", l.Addr())
	go func() {
		// The parent holds our stdin; when it goes away, so do we.
		io.Copy(io.Discard, os.Stdin)
		l.Close()
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sig; l.Close() }()
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// EMFILE and friends: back off briefly, as net/http does.
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if name == "tcpserver" {
			handle(c)
			continue
		}
		go handle(c)
	}
}

func serveTLS(c *tls.Conn, shards [][]byte) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(baselineConnTimeout))
	var idx [4]byte
	if _, err := io.ReadFull(c, idx[:]); err != nil {
		return
	}
	i := binary.BigEndian.Uint32(idx[:])
	if int(i) >= len(shards) {
		return
	}
	s := shards[i]
	buf := make([]byte, 4+len(s))
	binary.BigEndian.PutUint32(buf, uint32(len(s)))
	copy(buf[4:], s)
	c.Write(buf)
}
