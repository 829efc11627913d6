package checktest

import (
	"crypto/tls"
	"net"
	"sync"
	"testing"
)

// StandIn is a loopback TLS server standing in for a server's supervisor
// port (or a kubelet's :10250); what it serves can be swapped between
// checks. Every connection completes its handshake and is closed.
type StandIn struct {
	Addr string // 127.0.0.1:port
	mu   sync.Mutex
	pair *tls.Certificate
}

// Set makes the server serve chainPEM with keyPEM from now on.
func (s *StandIn) Set(t testing.TB, chainPEM, keyPEM []byte) {
	t.Helper()
	pair, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.pair = &pair
	s.mu.Unlock()
}

// NewStandIn listens on 127.0.0.1:0; it is stopped when the test ends.
func NewStandIn(t testing.TB) *StandIn {
	t.Helper()
	s := &StandIn{}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.pair, nil
	}}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return s
}

// ClosedAddr is a loopback address nothing listens on.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}
