package rotate

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/source"
	corev1 "k8s.io/api/core/v1"
)

// The kinds of entry a backup holds. Anything else (FIFO, socket, device)
// cannot be put back exactly, so the preflight refuses it by name.
const (
	EntryFile    = "file"
	EntryDir     = "dir"
	EntrySymlink = "symlink"
	EntryAbsent  = "absent" // a file K3s may have that was not there: removed on restore if it appeared
)

// Entry is one path of the node as the backup recorded it.
type Entry struct {
	Path   string      `json:"path"` // absolute
	Kind   string      `json:"kind"`
	Mode   fs.FileMode `json:"mode,omitempty"` // permission, setuid, setgid and sticky bits
	UID    int         `json:"uid"`
	GID    int         `json:"gid"`
	Target string      `json:"target,omitempty"` // symlink target, as readlink returns it (never followed)
	Size   int64       `json:"size,omitempty"`
	SHA256 string      `json:"sha256,omitempty"`
}

// Manifest is a backup's table of contents: its last member.
type Manifest struct {
	Version int     `json:"version"`
	DataDir string  `json:"dataDir"`
	Entries []Entry `json:"entries"`
	Secret  bool    `json:"secret"` // secret.json holds the serving secret (or its absence)
}

const manifestVersion = 2

// ReserveName is the space reservation kept in the backup directory while
// a rotation runs: a rollback deletes it first, so that even on a disk
// filled up after the backup there is room to put every file back.
const ReserveName = ".k3scert-reserve"

// Scope is what a backup holds: only what the K3s table names for this
// node (and whatever the plan writes), never containerd's root, images,
// kubelet state or `k3s certificate rotate` backups.
type Scope struct {
	Dirs   []string // recorded when present; recreated on restore; never removed
	Listed []string // directories whose every direct entry is recorded (kube-scheduler/, kube-controller-manager/)
	Files  []string // recorded as file or symlink, or as absent
}

// BackupScope is the backup scope of a plan (absolute paths, sorted).
func BackupScope(p Plan) Scope {
	dd := p.Node.DataDir
	abs := func(rel string) string { return filepath.Join(dd, filepath.FromSlash(rel)) }
	prog := k3s.Program(p.Node.Program)
	if prog == "" {
		prog = k3s.K3s
	}
	files := map[string]bool{}
	var sc Scope
	if p.Node.Role == string(k3s.RoleAgent) {
		sc.Dirs = []string{abs("agent")}
		for _, prof := range k3s.Profiles {
			for _, s := range k3s.Specs(prog, prof) {
				if s.Role != k3s.RoleAgent {
					continue
				}
				for _, f := range []string{s.Cert, s.Key, s.Kubecfg} {
					if f != "" && strings.Count(f, "/") == 1 {
						files[abs(f)] = true
					}
				}
			}
		}
		// The table's top-level agent files by their kinds, whatever
		// the release calls them; never a subdirectory.
		if ents, err := os.ReadDir(abs("agent")); err == nil {
			for _, d := range ents {
				n := d.Name()
				if d.IsDir() || strings.HasPrefix(n, ".") {
					continue
				}
				if strings.HasSuffix(n, ".crt") || strings.HasSuffix(n, ".key") || strings.HasSuffix(n, ".kubeconfig") {
					files[abs("agent/"+n)] = true
				}
			}
		}
	} else {
		sc.Dirs = []string{abs("server/tls"), abs("server/tls/etcd"), abs("server/cred")}
		sc.Listed = []string{abs("server/tls/kube-controller-manager"), abs("server/tls/kube-scheduler")}
		for _, prof := range k3s.Profiles {
			for _, s := range k3s.Specs(prog, prof) {
				if s.Role != k3s.RoleServer {
					continue
				}
				for _, f := range []string{s.Cert, s.Key} {
					if f != "" {
						files[abs(f)] = true
					}
				}
			}
			for _, kc := range k3s.Kubeconfigs(prog, prof) {
				if strings.HasPrefix(kc, "server/") {
					files[abs(kc)] = true
				}
			}
		}
		l := k3s.ListenerSpec(prog)
		files[abs(l.JSONPath)] = true
		if l.Trigger != "" {
			files[abs(l.Trigger)] = true
		}
		if p.ListenerJSON != "" {
			files[p.ListenerJSON] = true
		}
	}
	// Everything the plan writes is backed up, whatever the table says.
	for _, lf := range p.Leaves {
		files[lf.Cert], files[lf.Key] = true, true
	}
	for _, s := range p.Steps {
		if s.Name != StepLeaves && s.Name != StepListener {
			continue
		}
		for _, w := range s.Writes {
			if filepath.IsAbs(w) {
				files[w] = true
			}
		}
	}
	if p.Kubeconfig != "" {
		files[p.Kubeconfig] = true
	}
	listed := map[string]bool{}
	for _, d := range sc.Listed {
		listed[d] = true
	}
	for f := range files {
		if f == "" || listed[filepath.Dir(f)] {
			continue // recorded with its directory
		}
		sc.Files = append(sc.Files, f)
	}
	sort.Strings(sc.Files)
	return sc
}

// UnrepresentableError names the entries a backup cannot put back exactly.
type UnrepresentableError struct{ Problems []string }

func (e *UnrepresentableError) Error() string {
	return "cannot back up exactly, so nothing was stopped or changed: " + strings.Join(e.Problems, "; ")
}

// Survey records the scope as it is now: kind, mode, owner, group,
// symlink target, size and hash of every entry. It refuses (naming each)
// entries a backup cannot restore exactly: FIFOs, sockets, devices, a
// directory where K3s keeps a file, an unreadable or oversized file.
func Survey(sc Scope) ([]Entry, error) {
	var out []Entry
	var problems []string
	seen := map[string]bool{}
	add := func(p string, wantDir bool) {
		if seen[p] {
			return
		}
		seen[p] = true
		e, err := surveyOne(p, wantDir)
		switch {
		case err != nil:
			problems = append(problems, err.Error())
		case e.Kind == EntryAbsent && wantDir:
			// a directory that is not there is not recorded
		default:
			out = append(out, e)
		}
	}
	for _, d := range sc.Dirs {
		add(d, true)
	}
	for _, d := range sc.Listed {
		add(d, true)
		ents, err := os.ReadDir(d)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			problems = append(problems, fmt.Sprintf("%s: %v", d, err))
			continue
		}
		for _, x := range ents {
			p := filepath.Join(d, x.Name())
			if isOurs(p) {
				continue
			}
			add(p, x.IsDir())
		}
	}
	for _, f := range sc.Files {
		add(f, false)
	}
	if len(problems) > 0 {
		return out, &UnrepresentableError{Problems: problems}
	}
	return out, nil
}

func surveyOne(p string, wantDir bool) (Entry, error) {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Entry{Path: p, Kind: EntryAbsent}, nil
	}
	if err != nil {
		return Entry{}, fmt.Errorf("%s: %w", p, err)
	}
	e := Entry{Path: p, Mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.UID, e.GID = int(st.Uid), int(st.Gid)
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(p)
		if err != nil {
			return Entry{}, fmt.Errorf("%s: %w", p, err)
		}
		e.Kind, e.Target, e.Mode = EntrySymlink, t, 0
	case fi.IsDir():
		if !wantDir {
			return Entry{}, fmt.Errorf("%s is a directory where K3s keeps a file", p)
		}
		e.Kind = EntryDir
	case fi.Mode().IsRegular():
		if wantDir {
			return Entry{}, fmt.Errorf("%s is a file where K3s keeps a directory", p)
		}
		b, err := source.ReadFile(p)
		if err != nil {
			return Entry{}, fmt.Errorf("%s: %w (a K3s certificate, key or kubeconfig is at most %d KiB)", p, err, source.MaxFileSize>>10)
		}
		h := sha256.Sum256(b)
		e.Kind, e.Size, e.SHA256 = EntryFile, int64(len(b)), hex.EncodeToString(h[:])
	default:
		return Entry{}, fmt.Errorf("%s is a %s: a backup holds only files, directories and symlinks; move it out of the way and run again", p, kindName(fi.Mode()))
	}
	return e, nil
}

func kindName(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "FIFO (named pipe)"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file (" + m.String() + ")"
}

// isOurs: k3scert's own files beside K3s's (journal, atomic-write temps).
func isOurs(p string) bool {
	b := filepath.Base(p)
	return strings.HasPrefix(b, JournalName) || strings.Contains(b, ".k3scert-") || strings.HasPrefix(b, ".k3scert")
}

// BackupSize is what a backup of these entries takes on disk at most
// (uncompressed, with tar headers) plus the secret.
func BackupSize(entries []Entry, secretBytes int64) int64 {
	n := int64(4096) + secretBytes + 1024
	for _, e := range entries {
		n += 1024 + e.Size
	}
	return n
}

// memberName is where an entry lives in the tar.
func memberName(dataDir, p string) string {
	if rel, err := filepath.Rel(dataDir, p); err == nil && !strings.HasPrefix(rel, "..") {
		return "data/" + filepath.ToSlash(rel)
	}
	return "root" + filepath.ToSlash(p)
}

// backup streams one tar.gz (0600) of the scope, the serving secret as
// JSON and the manifest into the backup directory, verifies it can be
// read back, and reserves room for a rollback. On any error it leaves no
// backup behind and returns "" (nothing was changed yet).
func (e *Executor) backup(ctx context.Context) (string, error) {
	var sec *corev1.Secret
	if e.Secrets != nil {
		st, err := e.Secrets(ctx)
		if err != nil {
			return "", fmt.Errorf("open datastore for the secret backup: %w", err)
		}
		sec, err = st.Get(ctx)
		st.Close()
		if err != nil {
			return "", fmt.Errorf("read the serving secret for the backup: %w", err)
		}
	}
	entries, err := Survey(BackupScope(e.Plan))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(e.Plan.BackupDir, 0o700); err != nil {
		return "", fmt.Errorf("backup directory: %w", err)
	}
	f, err := os.CreateTemp(e.Plan.BackupDir, ".rotate-*.partial")
	if err != nil {
		return "", fmt.Errorf("backup directory: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return "", err
	}
	m := Manifest{Version: manifestVersion, DataDir: e.Plan.Node.DataDir, Secret: e.Secrets != nil}
	bw := bufio.NewWriterSize(f, 64<<10)
	gz := gzip.NewWriter(bw)
	tw := tar.NewWriter(gz)
	for _, en := range entries {
		h := &tar.Header{Name: memberName(m.DataDir, en.Path), Mode: int64(en.Mode.Perm()), Uid: en.UID, Gid: en.GID, Format: tar.FormatPAX}
		switch en.Kind {
		case EntryAbsent:
			m.Entries = append(m.Entries, en)
			continue
		case EntryDir:
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
			if err := tw.WriteHeader(h); err != nil {
				return "", fmt.Errorf("write backup: %w", err)
			}
		case EntrySymlink:
			h.Typeflag, h.Linkname = tar.TypeSymlink, en.Target
			if err := tw.WriteHeader(h); err != nil {
				return "", fmt.Errorf("write backup: %w", err)
			}
		case EntryFile:
			// K3s is stopped; read again so the backup holds exactly
			// what is restored, and record what was read.
			b, err := source.ReadFile(en.Path)
			if err != nil {
				return "", fmt.Errorf("backup %s: %w", en.Path, err)
			}
			sum := sha256.Sum256(b)
			en.Size, en.SHA256 = int64(len(b)), hex.EncodeToString(sum[:])
			h.Typeflag, h.Size = tar.TypeReg, int64(len(b))
			if err := tw.WriteHeader(h); err != nil {
				return "", fmt.Errorf("write backup: %w", err)
			}
			if _, err := tw.Write(b); err != nil {
				return "", fmt.Errorf("write backup: %w", err)
			}
		}
		m.Entries = append(m.Entries, en)
	}
	if m.Secret {
		sj, err := marshalSecret(sec)
		if err != nil {
			return "", err
		}
		if err := writeMember(tw, "secret.json", sj); err != nil {
			return "", fmt.Errorf("write backup: %w", err)
		}
	}
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return "", err
	}
	if err := writeMember(tw, "manifest.json", mj); err != nil {
		return "", fmt.Errorf("write backup: %w", err)
	}
	for _, c := range []func() error{tw.Close, gz.Close, bw.Flush, f.Sync, f.Close} {
		if err := c(); err != nil {
			return "", fmt.Errorf("write backup %s: %w", tmp, err)
		}
	}
	path := e.backupName()
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("write backup: %w", err)
	}
	ok = true
	if err := syncDir(e.Plan.BackupDir); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("write backup: %w", err)
	}
	if _, err := readBackup(path, nil); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("the backup does not read back: %w", err)
	}
	if err := reserve(filepath.Join(e.Plan.BackupDir, ReserveName), BackupSize(m.Entries, 0)); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("reserve room for a rollback: %w", err)
	}
	return path, nil
}

// backupName: sub-second resolution, and never an existing name.
func (e *Executor) backupName() string {
	base := filepath.Join(e.Plan.BackupDir, "rotate-"+e.now().UTC().Format("20060102T150405.000000000Z"))
	p := base + ".tar.gz"
	for i := 2; ; i++ {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			return p
		}
		p = fmt.Sprintf("%s-%d.tar.gz", base, i)
	}
}

func writeMember(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

// reserve allocates size bytes at path (really allocated, not sparse).
func reserve(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = syscall.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, syscall.EOPNOTSUPP) {
		_, err = io.CopyN(f, zeroReader{}, size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// releaseReserve frees the rollback reservation.
func (e *Executor) releaseReserve() {
	if e.Plan.BackupDir != "" {
		os.Remove(filepath.Join(e.Plan.BackupDir, ReserveName))
	}
}

// backupContents is a backup read through once: the manifest, the secret
// and nothing else kept in memory.
type backupContents struct {
	Manifest *Manifest // nil for a backup written before manifests
	Secret   []byte
}

// readBackup reads a backup to its end, checking the gzip checksum and
// every member against the manifest; visit (optional) sees each member.
func readBackup(path string, visit func(h *tar.Header, r io.Reader) error) (backupContents, error) {
	var out backupContents
	f, err := os.Open(path)
	if err != nil {
		return out, fmt.Errorf("open backup: %w", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		return out, fmt.Errorf("backup %s: %w", path, err)
	}
	tr := tar.NewReader(gz)
	sums := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return out, fmt.Errorf("backup %s: %w", path, err)
		}
		switch h.Name {
		case "manifest.json", "secret.json":
			b, err := io.ReadAll(io.LimitReader(tr, 16<<20))
			if err != nil {
				return out, fmt.Errorf("backup %s: %w", path, err)
			}
			if h.Name == "secret.json" {
				out.Secret = b
				continue
			}
			out.Manifest = &Manifest{}
			if err := json.Unmarshal(b, out.Manifest); err != nil {
				return out, fmt.Errorf("backup %s: manifest: %w", path, err)
			}
			continue
		}
		hs := sha256.New()
		var r io.Reader = io.TeeReader(tr, hs)
		if visit != nil {
			if err := visit(h, r); err != nil {
				return out, err
			}
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return out, fmt.Errorf("backup %s: %w", path, err)
		}
		if h.Typeflag == tar.TypeReg {
			sums[h.Name] = hex.EncodeToString(hs.Sum(nil))
		}
	}
	if out.Manifest != nil {
		for _, en := range out.Manifest.Entries {
			if en.Kind != EntryFile {
				continue
			}
			if got := sums[memberName(out.Manifest.DataDir, en.Path)]; got != en.SHA256 {
				return out, fmt.Errorf("backup %s: %s does not match its manifest (damaged backup)", path, en.Path)
			}
		}
	}
	return out, nil
}

// RestoreReport is what a restore did.
type RestoreReport struct {
	Rewritten, Removed, Unchanged int
	Problems                      []string // entries that could not be put back
}

// restore puts every entry and the secret back exactly as the backup
// recorded them: type, content, mode, owner, group, symlink target; an
// entry recorded as absent is removed if it appeared (only a file or a
// symlink). It touches nothing the backup did not record. It reads the
// whole backup once (checksums) before changing anything.
func (e *Executor) restore(ctx context.Context, backup string) (RestoreReport, error) {
	var rep RestoreReport
	bc, err := readBackup(backup, nil)
	if err != nil {
		return rep, err
	}
	if bc.Manifest == nil {
		return e.restoreLegacy(ctx, backup)
	}
	m := bc.Manifest
	byMember := map[string]Entry{}
	for _, en := range m.Entries {
		name := memberName(m.DataDir, en.Path)
		if en.Kind == EntryDir {
			name += "/"
		}
		byMember[name] = en
	}
	note := func(p string, err error) {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %v", p, err))
	}
	_, err = readBackup(backup, func(h *tar.Header, r io.Reader) error {
		en, ok := byMember[h.Name]
		if !ok {
			return nil
		}
		var changed bool
		var err error
		switch en.Kind {
		case EntryDir:
			changed, err = restoreDir(en)
		case EntrySymlink:
			changed, err = restoreSymlink(en)
		case EntryFile:
			b, rerr := io.ReadAll(io.LimitReader(r, source.MaxFileSize+1))
			if rerr != nil {
				return rerr
			}
			changed, err = restoreFile(en, b)
		}
		switch {
		case err != nil:
			note(en.Path, err)
		case changed:
			rep.Rewritten++
		default:
			rep.Unchanged++
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	for _, en := range m.Entries {
		if en.Kind != EntryAbsent {
			continue
		}
		fi, err := os.Lstat(en.Path)
		if err != nil {
			rep.Unchanged++
			continue
		}
		if fi.Mode().IsRegular() || fi.Mode()&fs.ModeSymlink != 0 {
			if err := os.Remove(en.Path); err != nil {
				note(en.Path, err)
			} else {
				rep.Removed++
			}
		}
	}
	// Temp files of an interrupted atomic write are k3scert's own.
	for _, en := range m.Entries {
		if en.Kind == EntryDir {
			if tmps, _ := filepath.Glob(filepath.Join(en.Path, ".*.k3scert-*")); len(tmps) > 0 {
				for _, t := range tmps {
					os.Remove(t)
				}
			}
		}
	}
	if m.Secret && e.Secrets != nil && bc.Secret != nil {
		if err := e.restoreSecret(ctx, bc.Secret); err != nil {
			note("secret "+e.Plan.SecretKey, err)
		}
	}
	if len(rep.Problems) > 0 {
		return rep, fmt.Errorf("restore incomplete: %s", strings.Join(rep.Problems, "; "))
	}
	return rep, nil
}

func (e *Executor) restoreSecret(ctx context.Context, sj []byte) error {
	if e.secretKnown && !e.secretWritten {
		return nil // this run never wrote it
	}
	var s secretJSON
	if err := json.Unmarshal(sj, &s); err != nil {
		return fmt.Errorf("secret.json: %w", err)
	}
	st, err := e.Secrets(ctx)
	if err != nil {
		return e.explain(fmt.Errorf("open datastore: %w", err))
	}
	defer st.Close()
	cur, err := st.Get(ctx)
	if err != nil {
		return e.explain(fmt.Errorf("read secret: %w", err))
	}
	if s.Absent {
		if cur == nil {
			return nil
		}
		return e.explain(st.Delete(ctx))
	}
	if cur != nil && sameSecret(cur, s.Secret) {
		return nil // never written by this rotation: nothing to put back
	}
	return e.explain(st.Put(ctx, s.Secret))
}

func sameSecret(a, b *corev1.Secret) bool {
	if len(a.Data) != len(b.Data) || len(a.Annotations) != len(b.Annotations) {
		return false
	}
	for k, v := range a.Data {
		if string(b.Data[k]) != string(v) {
			return false
		}
	}
	for k, v := range a.Annotations {
		if b.Annotations[k] != v {
			return false
		}
	}
	return true
}

// restoreLegacy restores a backup written before manifests (regular files
// only, no deletion).
func (e *Executor) restoreLegacy(ctx context.Context, backup string) (RestoreReport, error) {
	var rep RestoreReport
	var sj []byte
	_, err := readBackup(backup, func(h *tar.Header, r io.Reader) error {
		b, err := io.ReadAll(io.LimitReader(r, source.MaxFileSize+1))
		if err != nil {
			return err
		}
		switch {
		case h.Name == "kubeconfig" && e.Plan.Kubeconfig != "":
			rep.Rewritten++
			return WriteAtomic(e.Plan.Kubeconfig, b, os.FileMode(h.Mode).Perm())
		case strings.HasPrefix(h.Name, "data/"):
			rep.Rewritten++
			return WriteAtomic(e.dataPath(strings.TrimPrefix(h.Name, "data/")), b, os.FileMode(h.Mode).Perm())
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	bc, _ := readBackup(backup, nil)
	sj = bc.Secret
	if e.Secrets != nil && sj != nil {
		return rep, e.restoreSecret(ctx, sj)
	}
	return rep, nil
}

func ownerOf(fi fs.FileInfo) (int, int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return -1, -1
}

func permOf(fi fs.FileInfo) fs.FileMode {
	return fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

func restoreDir(en Entry) (bool, error) {
	fi, err := os.Lstat(en.Path)
	changed := false
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(en.Path, 0o700); err != nil {
			return false, err
		}
		changed = true
		fi, err = os.Lstat(en.Path)
	}
	if err != nil {
		return false, err
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("was a directory, is now %s: left as it is", fi.Mode().Type())
	}
	return setMeta(en, fi, changed)
}

func setMeta(en Entry, fi fs.FileInfo, changed bool) (bool, error) {
	if u, g := ownerOf(fi); u != en.UID || g != en.GID {
		if err := os.Lchown(en.Path, en.UID, en.GID); err != nil {
			return changed, err
		}
		changed = true
	}
	if en.Kind != EntrySymlink {
		if permOf(fi) != en.Mode || changed {
			// chown clears setuid/setgid: chmod after it.
			if err := os.Chmod(en.Path, en.Mode); err != nil {
				return changed, err
			}
			changed = true
		}
	}
	return changed, nil
}

func restoreSymlink(en Entry) (bool, error) {
	fi, err := os.Lstat(en.Path)
	if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if t, err := os.Readlink(en.Path); err == nil && t == en.Target {
			return setMeta(en, fi, false)
		}
	}
	if err == nil && fi.IsDir() {
		return false, errors.New("was a symlink, is now a directory: left as it is")
	}
	tmp := tempName(en.Path)
	if err := os.Symlink(en.Target, tmp); err != nil {
		return false, err
	}
	if err := os.Lchown(tmp, en.UID, en.GID); err != nil {
		os.Remove(tmp)
		return false, err
	}
	if err := os.Rename(tmp, en.Path); err != nil {
		os.Remove(tmp)
		return false, err
	}
	return true, syncDir(filepath.Dir(en.Path))
}

func tempName(p string) string {
	return filepath.Join(filepath.Dir(p), fmt.Sprintf(".%s.k3scert-%s", filepath.Base(p), rand.Text()[:12]))
}

func restoreFile(en Entry, b []byte) (bool, error) {
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != en.SHA256 {
		return false, errors.New("backup member does not match its manifest")
	}
	fi, err := os.Lstat(en.Path)
	if err == nil && fi.Mode().IsRegular() {
		if cur, rerr := source.ReadFile(en.Path); rerr == nil && string(cur) == string(b) {
			return setMeta(en, fi, false)
		}
	}
	if err == nil && fi.IsDir() {
		return false, errors.New("was a file, is now a directory: left as it is")
	}
	werr := writeFileAs(en, b)
	if errors.Is(werr, syscall.ENOSPC) && err == nil && fi.Mode().IsRegular() {
		// No room even for a temporary copy: rewrite in place, which
		// needs no more room than the file already has.
		werr = rewriteInPlace(en, b)
	}
	return werr == nil, werr
}

// writeFileAs writes b to en.Path atomically with en's mode and owner.
func writeFileAs(en Entry, b []byte) error {
	tmp := tempName(en.Path)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Chown(en.UID, en.GID); err != nil {
		return err
	}
	if err := f.Chmod(en.Mode); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, en.Path); err != nil {
		return err
	}
	ok = true
	return syncDir(filepath.Dir(en.Path))
}

func rewriteInPlace(en Entry, b []byte) error {
	f, err := os.OpenFile(en.Path, os.O_WRONLY|os.O_TRUNC|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Chown(en.UID, en.GID); err != nil {
		return err
	}
	if err := f.Chmod(en.Mode); err != nil {
		return err
	}
	return f.Sync()
}

// Differences compares the node now with the manifest: every entry that
// is not as the backup recorded it. Empty means the node is identical.
func Differences(m *Manifest) []string {
	var out []string
	for _, en := range m.Entries {
		cur, err := surveyOne(en.Path, en.Kind == EntryDir)
		if err != nil {
			out = append(out, err.Error())
			continue
		}
		if cur.Kind != en.Kind || cur.SHA256 != en.SHA256 || cur.Target != en.Target ||
			(en.Kind != EntryAbsent && (cur.UID != en.UID || cur.GID != en.GID || (en.Kind != EntrySymlink && cur.Mode != en.Mode))) {
			out = append(out, fmt.Sprintf("%s: was %s, is %s", en.Path, describe(en), describe(cur)))
		}
	}
	return out
}

func describe(e Entry) string {
	switch e.Kind {
	case EntryAbsent:
		return "absent"
	case EntrySymlink:
		return fmt.Sprintf("symlink to %s (%d:%d)", e.Target, e.UID, e.GID)
	case EntryDir:
		return fmt.Sprintf("dir %v (%d:%d)", e.Mode, e.UID, e.GID)
	}
	h := e.SHA256
	if len(h) > 12 {
		h = h[:12]
	}
	return fmt.Sprintf("file %v (%d:%d) sha256 %s", e.Mode, e.UID, e.GID, h)
}

// ReadManifest returns a backup's manifest (after checking the backup).
func ReadManifest(backup string) (*Manifest, error) {
	bc, err := readBackup(backup, nil)
	if err != nil {
		return nil, err
	}
	if bc.Manifest == nil {
		return nil, fmt.Errorf("backup %s has no manifest (written by an older k3scert)", backup)
	}
	return bc.Manifest, nil
}

// secretJSON is how the backup stores the serving secret.
type secretJSON struct {
	Absent bool           `json:"absent"`
	Secret *corev1.Secret `json:"secret,omitempty"`
}

func marshalSecret(s *corev1.Secret) ([]byte, error) {
	return json.MarshalIndent(secretJSON{Absent: s == nil, Secret: s}, "", "  ")
}

func isJournal(p string) bool { return strings.HasPrefix(filepath.Base(p), JournalName) }
