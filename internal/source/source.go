// Package source turns the world into observations: certificate files,
// kubeconfigs, dynamic-cert.json, the listener secret and what live TLS
// endpoints serve. One failing source never stops the others: a file that
// cannot be read or parsed becomes a Problem with a stable reason, and the
// scan goes on. Private keys are read only to check that they match their
// certificate; they are never kept in an Inventory.
package source

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"
)

// Kind is where an observation came from. The values are part of the JSON
// output and never change.
type Kind string

// The source kinds.
const (
	File        Kind = "file"
	Kubeconfig  Kind = "kubeconfig"
	DynamicCert Kind = "dynamic-cert"
	Secret      Kind = "secret"
	Endpoint    Kind = "endpoint"
)

// Cert is one certificate found somewhere.
type Cert struct {
	Source   Kind
	Location string // file path, "path (user NAME)", "kube-system/k3s-serving", "127.0.0.1:6443"
	Index    int    // position in its bundle or chain (0 = the leaf / first block)
	SpecID   string // what it is, from the k3s table ("listener" for the listener certificate); "" when unknown
	Via      string // how it was obtained (secret: "api"/"datastore"; kubeconfig: "client"/"ca")
	Cert     *x509.Certificate
}

// KeyCheck records whether a private key matches its certificate.
type KeyCheck struct {
	Source       Kind
	Location     string // the key's location
	CertLocation string // the certificate it was compared with
	Matches      bool
	Algorithm    string // e.g. "ECDSA P-256"
	Count        int    // number of keys in the file (service.key may hold several)
	// Mode is the key file's permission bits, for Source File (0 otherwise).
	Mode fs.FileMode
}

// KubeconfigRef is a kubeconfig's view of its credentials.
type KubeconfigRef struct {
	Location  string
	Server    string
	Embedded  bool   // client certificate embedded (k3s.yaml) rather than referenced by path
	CertFile  string // referenced client certificate file, if any
	KeyFile   string
	CAFile    string
	Copy      bool // a user-supplied copy (--compare-kubeconfig), not a file K3s writes
	ClientFP  string
	ServerCAs []string // fingerprints of the embedded or referenced CA data
}

// EndpointResult says what a TLS endpoint did.
type EndpointResult struct {
	Address     string
	Role        string // "supervisor", "apiserver", "kubelet", "etcd", or "" for user endpoints
	Explicit    bool   // asked for by the user (a failure to answer is then a problem)
	Status      string // "ok", "refused", "timeout", "not-tls", "error"
	Error       string
	Trusted     bool   // chain verified against the node's CAs at the judgement time
	VerifyError string // why it did not verify, when it did not
}

// Problem is a source that could not be read or parsed.
type Problem struct {
	Source   Kind
	Location string
	Reason   Reason
	Detail   string
}

// Inventory is everything the sources observed.
type Inventory struct {
	mu          sync.Mutex
	Certs       []Cert
	Keys        []KeyCheck
	Kubeconfigs []KubeconfigRef
	Endpoints   []EndpointResult
	Problems    []Problem
}

// AddCert records certificates of one location, in order.
func (inv *Inventory) AddCert(c ...Cert) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.Certs = append(inv.Certs, c...)
}

// AddKey records a key check.
func (inv *Inventory) AddKey(k KeyCheck) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.Keys = append(inv.Keys, k)
}

// AddKubeconfig records a kubeconfig.
func (inv *Inventory) AddKubeconfig(k KubeconfigRef) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.Kubeconfigs = append(inv.Kubeconfigs, k)
}

// AddEndpoint records an endpoint result.
func (inv *Inventory) AddEndpoint(e EndpointResult) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.Endpoints = append(inv.Endpoints, e)
}

// AddProblem records a source that failed.
func (inv *Inventory) AddProblem(p Problem) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.Problems = append(inv.Problems, p)
}

// Sort orders every list by location (then index), so output is stable.
func (inv *Inventory) Sort() {
	sort.SliceStable(inv.Certs, func(i, j int) bool {
		a, b := inv.Certs[i], inv.Certs[j]
		if a.Source != b.Source {
			return kindOrder(a.Source) < kindOrder(b.Source)
		}
		if a.Location != b.Location {
			return a.Location < b.Location
		}
		return a.Index < b.Index
	})
	sort.SliceStable(inv.Keys, func(i, j int) bool { return inv.Keys[i].Location < inv.Keys[j].Location })
	sort.SliceStable(inv.Kubeconfigs, func(i, j int) bool { return inv.Kubeconfigs[i].Location < inv.Kubeconfigs[j].Location })
	sort.SliceStable(inv.Endpoints, func(i, j int) bool { return inv.Endpoints[i].Address < inv.Endpoints[j].Address })
	sort.SliceStable(inv.Problems, func(i, j int) bool { return inv.Problems[i].Location < inv.Problems[j].Location })
}

func kindOrder(k Kind) int {
	switch k {
	case File:
		return 0
	case Kubeconfig:
		return 1
	case DynamicCert:
		return 2
	case Secret:
		return 3
	}
	return 4
}

// Source reads one part of the world into an inventory. Read records
// failures as Problems; it does not return them.
type Source interface {
	Name() string
	Read(ctx context.Context, inv *Inventory)
}

// ReadAll runs every source concurrently and returns the sorted inventory.
func ReadAll(ctx context.Context, sources ...Source) *Inventory {
	inv := &Inventory{}
	var wg sync.WaitGroup
	for _, s := range sources {
		wg.Add(1)
		go func(s Source) {
			defer wg.Done()
			s.Read(ctx, inv)
		}(s)
	}
	wg.Wait()
	inv.Sort()
	return inv
}

// MaxFileSize is the largest file a reader accepts. K3s certificate files
// are a few KiB; anything larger is not one.
const MaxFileSize = 1 << 20

// errTooLarge is wrapped by ReadFile's error for oversized files.
var errTooLarge = errors.New("file too large")

// ErrTooLarge is what errors.Is matches for a file over MaxFileSize.
var ErrTooLarge = errTooLarge

// ErrNotRegular is what errors.Is matches for a FIFO, socket, device or
// directory where a file was expected.
var ErrNotRegular = errors.New("not a regular file")

// ReadFile is THE way k3scert reads a file named by the node or by a flag:
// a non-blocking open (a FIFO never hangs the scan), regular files only, at
// most MaxFileSize bytes, whatever the file claims its size is. Every
// reader of outside input calls it (or ReadFileInfo); errors are
// *fs.PathError wrapping fs.ErrNotExist, fs.ErrPermission, ErrNotRegular or
// ErrTooLarge, so classifyReadError and errors.Is see them.
func ReadFile(path string) ([]byte, error) {
	b, _, err := ReadFileInfo(path)
	return b, err
}

// ReadFileInfo is ReadFile that also returns what fstat said about the
// file it read (its mode, for the key permission check): the same open
// file, so no rename between a stat and the read can make them disagree.
//
// It uses the system calls directly (open, fstat, read until EOF, close:
// four or five per file) rather than os.File, which adds an epoll
// registration that a regular file always refuses and a cleanup per file:
// a scan of 10,000 files pays for every call. The errors are the ones
// os.OpenFile, (*os.File).Stat and Read return (*fs.PathError with op
// "open", "stat" or "read" and the errno).
func ReadFileInfo(path string) ([]byte, fs.FileInfo, error) {
	// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
	// writer forever. O_NOCTTY: a terminal device named by a flag never
	// becomes our controlling terminal. Non-regular files are refused
	// right after the open, before any read.
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = syscall.Open(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := ignoringEINTR(func() error { return syscall.Fstat(fd, &st) }); err != nil {
		return nil, nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	fi := newStatInfo(path, &st)
	if !fi.Mode().IsRegular() {
		return nil, fi, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w (%s)", ErrNotRegular, modeKind(fi.Mode()))}
	}
	if fi.Size() > MaxFileSize {
		return nil, fi, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: %d bytes, over the %d-byte limit (K3s certificate files are a few KiB)", errTooLarge, fi.Size(), MaxFileSize)}
	}
	// The size can change between fstat and read (a file still being
	// written): read until EOF, but never more than the limit plus one
	// byte. The buffer is sized from fstat plus one byte, so a file that
	// did not change is read into one allocation and its EOF seen by the
	// next read.
	buf := make([]byte, max(fi.Size(), 0)+1)
	n := 0
	for {
		if n == len(buf) {
			if n > MaxFileSize {
				break
			}
			grown := make([]byte, min(2*len(buf)+bytes.MinRead, MaxFileSize+1))
			copy(grown, buf)
			buf = grown
		}
		var m int
		err := ignoringEINTR(func() (err error) {
			m, err = syscall.Read(fd, buf[n:])
			return err
		})
		if err != nil {
			return nil, fi, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if m <= 0 {
			break
		}
		n += m
	}
	if n > MaxFileSize {
		return nil, fi, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: grew past the %d-byte limit while read", errTooLarge, MaxFileSize)}
	}
	return buf[:n], fi, nil
}

func ignoringEINTR(f func() error) error {
	for {
		if err := f(); err != syscall.EINTR {
			return err
		}
	}
}

// statInfo is the fs.FileInfo of an fstat, as os.File.Stat makes it.
type statInfo struct {
	name string
	st   syscall.Stat_t
	mode fs.FileMode
}

func newStatInfo(path string, st *syscall.Stat_t) *statInfo {
	fi := &statInfo{name: filepath.Base(path), st: *st, mode: fs.FileMode(st.Mode & 0o777)}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFBLK:
		fi.mode |= fs.ModeDevice
	case syscall.S_IFCHR:
		fi.mode |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		fi.mode |= fs.ModeDir
	case syscall.S_IFIFO:
		fi.mode |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		fi.mode |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		fi.mode |= fs.ModeSocket
	}
	if st.Mode&syscall.S_ISGID != 0 {
		fi.mode |= fs.ModeSetgid
	}
	if st.Mode&syscall.S_ISUID != 0 {
		fi.mode |= fs.ModeSetuid
	}
	if st.Mode&syscall.S_ISVTX != 0 {
		fi.mode |= fs.ModeSticky
	}
	return fi
}

func (fi *statInfo) Name() string       { return fi.name }
func (fi *statInfo) Size() int64        { return fi.st.Size }
func (fi *statInfo) Mode() fs.FileMode  { return fi.mode }
func (fi *statInfo) ModTime() time.Time { return time.Unix(fi.st.Mtim.Unix()) }
func (fi *statInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi *statInfo) Sys() any           { return &fi.st }

// modeKind names a non-regular file type for messages.
func modeKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "type " + m.Type().String()
}

// readLimited is ReadFile (kept for the readers of this package).
func readLimited(path string) ([]byte, error) { return ReadFile(path) }
