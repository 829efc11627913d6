package exporter

import (
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fsnotify/fsnotify"
	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/k3s"
)

// watcher is a non-recursive fsnotify watch over a set of directories. A
// nil or failed watcher is valid and watches nothing.
type watcher struct {
	fs  *fsnotify.Watcher
	log *slog.Logger
}

func newWatcher(log *slog.Logger) (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return &watcher{log: log}, err
	}
	return &watcher{fs: fw, log: log}, nil
}

// sync adds every existing directory of dirs that is not watched yet.
// Watches of removed directories vanish by themselves (inotify drops them);
// a directory that comes back is added again by the next sync.
func (w *watcher) sync(dirs []string) {
	if w == nil || w.fs == nil {
		return
	}
	have := map[string]bool{}
	for _, d := range w.fs.WatchList() {
		have[d] = true
	}
	for _, d := range dirs {
		if have[d] {
			continue
		}
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			continue
		}
		if err := w.fs.Add(d); err != nil {
			w.log.Warn("cannot watch directory", "dir", d, "err", err)
			continue
		}
		have[d] = true
	}
}

func (w *watcher) events() <-chan fsnotify.Event {
	if w == nil || w.fs == nil {
		return nil
	}
	return w.fs.Events
}

func (w *watcher) errors() <-chan error {
	if w == nil || w.fs == nil {
		return nil
	}
	return w.fs.Errors
}

// stop closes the watcher after its channels closed; sync then does nothing.
func (w *watcher) stop() {
	if w != nil && w.fs != nil {
		_ = w.fs.Close()
		w.fs = nil
	}
}

func (w *watcher) close() { w.stop() }

// WatchDirs lists the directories whose changes should trigger a rescan of
// the node check.Options describe: every directory of the K3s table that
// holds a certificate, key or kubeconfig (server/tls, server/tls/etcd,
// server/cred, agent), the listener's dynamic-cert.json directory, and the
// directories of the admin kubeconfig, the K3s config file and the
// --kubeconfig copies. A node that cannot be resolved yet (no data dir)
// yields the directories outside the data dir only.
func WatchDirs(o check.Options) []string {
	set := map[string]bool{}
	add := func(p string) {
		if p != "" {
			set[filepath.Clean(p)] = true
		}
	}
	n, err := check.Resolve(o)
	prog := o.Program
	if err == nil {
		prog = n.Program
		rel := func(r string) { add(filepath.Dir(filepath.Join(n.DataDir, filepath.FromSlash(r)))) }
		for _, s := range k3s.Specs(n.Program, n.Profile) {
			for _, p := range []string{s.Cert, s.Key, s.Kubecfg} {
				if p != "" {
					rel(p)
				}
			}
		}
		for _, p := range k3s.Kubeconfigs(n.Program, n.Profile) {
			rel(p)
		}
		rel(k3s.ListenerSpec(n.Program).JSONPath)
		// The parents up to the data dir too (non-recursive, so the
		// containerd tree below agent/ stays silent): when server/tls is
		// replaced as a whole (a restore, `mv tls.new tls`), the watch on
		// the old directory dies with it, and only the parent sees the
		// new one appear; the rescan that follows watches it again.
		for d := range set {
			for p := filepath.Dir(d); strings.HasPrefix(p, n.DataDir) && len(p) >= len(n.DataDir); p = filepath.Dir(p) {
				set[p] = true
				if p == n.DataDir {
					break
				}
			}
		}
	}
	if prog == "" {
		prog = k3s.K3s
	}
	admin, cfg := o.AdminKubeconfig, o.ConfigFile
	if admin == "" {
		admin = k3s.DefaultKubeconfig(prog)
	}
	if cfg == "" {
		cfg = k3s.DefaultConfigFile(prog)
	}
	add(filepath.Dir(admin))
	add(filepath.Dir(cfg))
	for _, k := range o.Kubeconfigs {
		if abs, err := filepath.Abs(k); err == nil {
			add(filepath.Dir(abs))
		}
	}
	out := make([]string, 0, len(set))
	for d := range set {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}
