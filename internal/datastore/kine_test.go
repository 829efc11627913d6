package datastore

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/k3s-io/kine/pkg/endpoint"
	"github.com/sirupsen/logrus"
)

// This file runs kine's own library in-process, for tests only: the product
// writes kine's table directly (sqlite.go) and must not link kine; these
// tests prove that kine reads what k3scert writes, and the other way round.

// kineTestParams are K3s's SQLite DSN parameters (kine v0.17.5
// pkg/drivers/sqlite/sqlite.go:23 DefaultParams), with kine's startup VACUUM
// switched off.
const kineTestParams = "_journal_mode=WAL&_busy_timeout=30000&_synchronous=NORMAL&_txlock=immediate&_stmt_cache_size=20&cache=shared&_kine_disable_startup_vacuum=true"

// kineServer is kine's own etcd endpoint, run in-process over a SQLite
// file on a private unix socket.
type kineServer struct {
	cancel context.CancelFunc
	wg     *sync.WaitGroup
	dir    string
	store  *Etcd
	level  logrus.Level
}

var logMu sync.Mutex

// startKine starts kine over dbPath. Compaction is off. The caller stops
// it with stop.
func startKine(dbPath string) (*kineServer, error) {
	dir, err := os.MkdirTemp("", "k3scert-kine-")
	if err != nil {
		return nil, err
	}
	// kine logs at info level through logrus; keep k3scert's output clean.
	logMu.Lock()
	level := logrus.GetLevel()
	if level == logrus.InfoLevel {
		logrus.SetLevel(logrus.WarnLevel)
	}
	logMu.Unlock()

	kctx, cancel := context.WithCancel(context.Background())
	wg := &sync.WaitGroup{}
	k := &kineServer{cancel: cancel, wg: wg, dir: dir, level: level}
	cfg := endpoint.Config{
		WaitGroup:           wg,
		Listener:            "unix://" + filepath.Join(dir, "kine.sock"),
		Endpoint:            "sqlite://" + dbPath + "?" + kineTestParams,
		NotifyInterval:      5 * time.Second,
		EmulatedETCDVersion: "3.6.11",
		CompactInterval:     0, // never compact
		CompactTimeout:      5 * time.Second,
		CompactMinRetain:    1000,
		CompactBatchSize:    1000,
		PollBatchSize:       500,
		PollInterval:        time.Second,
	}
	cfg.ConnectionPoolConfig.MaxIdle = 2
	etcdCfg, err := endpoint.Listen(kctx, cfg)
	if err != nil {
		_ = k.stop()
		return nil, fmt.Errorf("start kine over %s: %w", dbPath, err)
	}
	// Requests carry the caller's ctx; the timeout applies when it has no
	// deadline.
	st, err := OpenEtcd(EtcdOptions{Endpoints: etcdCfg.Endpoints, Timeout: 10 * time.Second})
	if err != nil {
		_ = k.stop()
		return nil, err
	}
	st.kind, st.location = "sqlite", dbPath
	k.store = st
	return k, nil
}

// stop closes the client, shuts kine down and waits for its goroutines and
// its database connections to end.
func (k *kineServer) stop() error {
	var err error
	if k.store != nil {
		err = k.store.Close()
	}
	k.cancel()
	k.wg.Wait()
	waitKineGoroutines()
	_ = os.RemoveAll(k.dir)
	logMu.Lock()
	if logrus.GetLevel() == logrus.WarnLevel && k.level == logrus.InfoLevel {
		logrus.SetLevel(k.level)
	}
	logMu.Unlock()
	return err
}

// waitKineGoroutines waits (up to 20s, for a loaded machine) for kine goroutines outside its wait
// group (the TTL worker) to end after shutdown, so that none outlives the
// Store.
func waitKineGoroutines() {
	buf := make([]byte, 1<<20)
	for range 2000 {
		n := runtime.Stack(buf, true)
		if !kineRunning(buf[:n]) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kineRunning reports whether a goroutine dump still has kine goroutines
// other than one known upstream leak: when kine's TTL watch subscribes
// after its database closed, logstructured.Watch ranges over a nil
// channel forever (kine v0.17.5 logstructured.go:245-249). That goroutine
// holds nothing and never ends, so waiting for it would only cost time.
func kineRunning(dump []byte) bool {
	for _, g := range bytes.Split(dump, []byte("\n\n")) {
		if !bytes.Contains(g, []byte("github.com/k3s-io/kine/")) {
			continue
		}
		if bytes.Contains(g, []byte("chan receive (nil chan)")) && bytes.Contains(g, []byte("logstructured.(*LogStructured).Watch.func1")) {
			continue
		}
		return true
	}
	return false
}
