package lab

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Client is what users of an HA cluster have in front of the API: requests
// spread over every server, with failover when a server cannot be reached
// and a health check that takes a failing server out of the rotation and
// puts it back when it answers again. It models the K3s agent's client
// load balancer (pkg/agent/loadbalancer: dialContext tries the next server
// when the dial to one fails; servers failing their health check are
// skipped until it passes) and a TCP load balancer with health checks in
// front of kubectl. Like kubectl itself (client-go v0.37.2
// rest/request.go:1066-1078, maxRetries 10 at :167), a GET whose connection
// was reset or closed early (EOF) is sent again — through the load
// balancer, so to any server; each such retry is counted and its error kept
// (Retried, RetriedErrors). Any other failure (an HTTP error status, a TLS
// verification failure) is not retried: kubectl would show it. Every
// request the user would see fail is counted in Failed.
type Client struct {
	servers []string // host:port of each server's :6443
	tlsCfg  *tls.Config
	// Interval between requests (default 50 ms).
	Interval time.Duration

	mu      sync.Mutex
	healthy []bool
	next    int
	stats   ClientStats
	lastOK  time.Time
	started time.Time
	cancel  context.CancelFunc
	done    chan struct{}
}

// ClientStats is what the client saw.
type ClientStats struct {
	Sent   int `json:"sent"`
	Failed int `json:"failed"`
	// Failovers: requests that reached their answer on another server
	// after the dial to the first one failed.
	Failovers int `json:"failovers"`
	// LongestGapSeconds: the longest time between two successful answers.
	LongestGapSeconds float64 `json:"longestGapSeconds"`
	// Retried: requests sent again after a reset or an early EOF, as
	// client-go retries a GET; RetriedErrors the first few, verbatim.
	Retried       int      `json:"retried"`
	RetriedErrors []string `json:"retriedErrors,omitempty"`
	// Errors: the first few failures, verbatim.
	Errors  []string `json:"errors,omitempty"`
	Seconds float64  `json:"seconds"`
}

// NewClient builds a client for the cluster's servers with the admin
// credentials of server 1's k3s.yaml files (server-ca, client-admin).
func (c *Cluster) NewClient() (*Client, error) {
	s := c.Servers[0]
	ca, err := os.ReadFile(s.tls("server-ca.crt"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(s.tls("client-admin.crt"), s.tls("client-admin.key"))
	if err != nil {
		return nil, err
	}
	cl := &Client{tlsCfg: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, Interval: 50 * time.Millisecond}
	for _, n := range c.Servers {
		cl.servers = append(cl.servers, net.JoinHostPort("127.0.0.1", fmt.Sprint(n.Ports().Supervisor)))
		cl.healthy = append(cl.healthy, true)
	}
	return cl, nil
}

func (cl *Client) httpClient() *http.Client {
	// One connection per request, as a TCP load balancer balances
	// connections: a stopped server is then seen at the dial.
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: cl.tlsCfg.Clone()}}
}

// Start sends requests until Stop.
func (cl *Client) Start(ctx context.Context) {
	ctx, cl.cancel = context.WithCancel(ctx)
	cl.done = make(chan struct{})
	cl.started = time.Now()
	cl.lastOK = cl.started
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); cl.healthLoop(ctx) }()
	go func() { defer wg.Done(); cl.requestLoop(ctx) }()
	go func() { wg.Wait(); close(cl.done) }()
}

// Stop ends the client and returns what it saw.
func (cl *Client) Stop() ClientStats {
	cl.cancel()
	<-cl.done
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.gap(time.Now())
	cl.stats.Seconds = time.Since(cl.started).Seconds()
	return cl.stats
}

func (cl *Client) gap(now time.Time) {
	if g := now.Sub(cl.lastOK).Seconds(); g > cl.stats.LongestGapSeconds {
		cl.stats.LongestGapSeconds = g
	}
}

// healthLoop checks every server's /readyz every 200 ms.
func (cl *Client) healthLoop(ctx context.Context) {
	hc := cl.httpClient()
	hc.Timeout = 2 * time.Second
	for ctx.Err() == nil {
		for i, s := range cl.servers {
			_, err := get(ctx, hc, "https://"+s+"/readyz")
			cl.mu.Lock()
			cl.healthy[i] = err == nil
			cl.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (cl *Client) requestLoop(ctx context.Context) {
	hc := cl.httpClient()
	for ctx.Err() == nil {
		err, failover := cl.one(ctx, hc)
		for retry := 0; retry < 10 && err != nil && retryableGET(err) && ctx.Err() == nil; retry++ {
			cl.mu.Lock()
			cl.stats.Retried++
			if len(cl.stats.RetriedErrors) < 10 {
				cl.stats.RetriedErrors = append(cl.stats.RetriedErrors, time.Now().UTC().Format(time.RFC3339Nano)+" "+err.Error())
			}
			cl.mu.Unlock()
			err, failover = cl.one(ctx, hc)
		}
		if ctx.Err() != nil {
			return
		}
		cl.mu.Lock()
		cl.stats.Sent++
		now := time.Now()
		if err != nil {
			cl.stats.Failed++
			if len(cl.stats.Errors) < 10 {
				cl.stats.Errors = append(cl.stats.Errors, now.UTC().Format(time.RFC3339Nano)+" "+err.Error())
			}
		} else {
			cl.gap(now)
			cl.lastOK = now
			if failover {
				cl.stats.Failovers++
			}
		}
		cl.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(cl.Interval):
		}
	}
}

// one sends one request: to the next healthy server, and on a dial error
// to the following ones.
func (cl *Client) one(ctx context.Context, hc *http.Client) (error, bool) {
	cl.mu.Lock()
	order := make([]int, 0, len(cl.servers))
	for k := 0; k < len(cl.servers); k++ {
		i := (cl.next + k) % len(cl.servers)
		if cl.healthy[i] {
			order = append(order, i)
		}
	}
	cl.next = (cl.next + 1) % len(cl.servers)
	if len(order) == 0 { // all marked down: try every one, as the load balancer falls back to all
		for k := 0; k < len(cl.servers); k++ {
			order = append(order, (cl.next+k)%len(cl.servers))
		}
	}
	cl.mu.Unlock()
	var last error
	for k, i := range order {
		_, err := get(ctx, hc, "https://"+cl.servers[i]+"/api/v1/namespaces/kube-system")
		if err == nil {
			return nil, k > 0
		}
		last = err
		if !dialError(err) {
			return err, false
		}
	}
	return last, false
}

// dialError: the connection could not be made (the server is not
// listening), the only case a load balancer can move to the next server.
func dialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// retryableGET is client-go's isErrRetryableFunc for a GET: a connection
// reset, a probable EOF (utilnet.IsProbableEOF: io.EOF, io.ErrUnexpectedEOF,
// "use of closed network connection", "connection reset by peer") or a lost
// HTTP/2 connection.
func retryableGET(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"connection reset by peer", "use of closed network connection", "http2: client connection lost", "server sent GOAWAY"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func get(ctx context.Context, hc *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return b, nil
}
