// Package archive writes and reads the signed, optionally encrypted
// archives of a node's data directory that backups are made of.
//
// An archive is a tar stream: manifest.json first, then manifest.sig (a
// detached JWS over the manifest's bytes by the node's key), then each
// file the manifest lists, in its order, as files/<path>. The manifest
// names every file with its size, mode and SHA-256, so a reader checks
// each byte against it; nothing else may appear in the stream. With a
// passphrase the whole tar stream is encrypted (see encrypt.go). The
// format is described in docs/design/backup.md.
package archive

import (
	"archive/tar"
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/internal/cfg"
	"github.com/sampan-exchange/sampan/pki"
)

// Format is the manifest's format string.
const Format = "sampan-archive/1"

const (
	manifestName = "manifest.json"
	sigName      = "manifest.sig"
	filesPrefix  = "files/"
)

// Limits every reader enforces, whatever the signature says.
const (
	// MaxManifestSize bounds manifest.json.
	MaxManifestSize = 8 << 20
	// MaxFiles bounds the number of files an archive lists.
	MaxFiles = 100_000
	// MaxPathLen bounds a file's path.
	MaxPathLen = 512
	// MaxPathDepth bounds the number of a path's components.
	MaxPathDepth = 16
	maxSigSize   = 8 << 10
	maxMetaLen   = 64
)

// Manifest describes an archive: whose it is and every file in it.
type Manifest struct {
	Format        string    `json:"format"`
	NodeKind      string    `json:"node_kind"` // "authority" or "gateway"
	NodeID        string    `json:"node_id"`
	CreatedAt     time.Time `json:"created_at"`
	SampanVersion string    `json:"sampan_version"`
	// SignerKey is the signer's public key, PKIX DER in base64.
	SignerKey string `json:"signer_key"`
	// Meta holds facts the node records about the backup (for an
	// authority, the configuration serial it had published).
	Meta  map[string]string `json:"meta,omitempty"`
	Files []File            `json:"files"`
}

// File is one file of an archive.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Mode   uint32 `json:"mode"`
	SHA256 string `json:"sha256"`
}

// Source is a file to archive: Path in the archive, read from Disk.
type Source struct {
	Path string
	Disk string
}

// WriteOptions says who writes an archive.
type WriteOptions struct {
	NodeKind, NodeID, SampanVersion string
	Meta                            map[string]string
	// Key signs the manifest.
	Key crypto.Signer
	// Passphrase, when set, encrypts the archive.
	Passphrase []byte
	// Now, when set, replaces time.Now for CreatedAt.
	Now func() time.Time
}

// ReadOptions says how to read an archive.
type ReadOptions struct {
	// Passphrase decrypts an encrypted archive.
	Passphrase []byte
	// Trust decides whether the archive's signer (whose signature over
	// the manifest has verified) may be believed; an error refuses the
	// archive before any file is written.
	Trust func(m *Manifest, signer crypto.PublicKey) error
}

// Errors callers branch on.
var (
	// ErrUntrusted: the archive is signed, but not by a key the reader
	// trusts. Restore refuses it unless forced.
	ErrUntrusted = errors.New("archive is not signed by this node's key")
	// ErrPassphrase: the passphrase does not open the archive (or the
	// archive's header was altered).
	ErrPassphrase = errors.New("wrong passphrase or altered archive header")
	// ErrEncrypted: the archive is encrypted and no passphrase was given.
	ErrEncrypted = errors.New("archive is encrypted: give its passphrase")
)

// Write archives sources to w. Every source is hashed first, for the
// manifest, then copied; a source that changes in between fails the
// archive, so sources must be stable copies (a database's VACUUM INTO
// copy, a sealed log segment).
func Write(w io.Writer, sources []Source, o WriteOptions) (*Manifest, error) {
	spki, err := x509.MarshalPKIXPublicKey(o.Key.Public())
	if err != nil {
		return nil, fmt.Errorf("write archive: signer key: %w", err)
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	m := &Manifest{Format: Format, NodeKind: o.NodeKind, NodeID: o.NodeID, SampanVersion: o.SampanVersion,
		CreatedAt: now().UTC().Truncate(time.Millisecond), SignerKey: base64.StdEncoding.EncodeToString(spki), Meta: o.Meta, Files: []File{}}
	for _, s := range sources {
		f, err := describe(s)
		if err != nil {
			return nil, err
		}
		m.Files = append(m.Files, f)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("write archive: %w", err)
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("write archive: %w", err)
	}
	signer, err := pki.NewSigner(o.Key, "")
	if err != nil {
		return nil, fmt.Errorf("write archive: %w", err)
	}
	sig, err := signer.SignDetached(mb)
	if err != nil {
		return nil, fmt.Errorf("write archive: %w", err)
	}
	out := w
	var enc *encWriter
	if o.Passphrase != nil {
		if enc, err = newEncWriter(w, o.Passphrase); err != nil {
			return nil, fmt.Errorf("write archive: %w", err)
		}
		out = enc
	}
	tw := tar.NewWriter(out)
	put := func(name string, mode int64, size int64, r io.Reader) error {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: size, ModTime: m.CreatedAt, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	if err := put(manifestName, 0o644, int64(len(mb)), bytes.NewReader(mb)); err != nil {
		return nil, fmt.Errorf("write archive: %w", err)
	}
	if err := put(sigName, 0o644, int64(len(sig)), strings.NewReader(sig)); err != nil {
		return nil, fmt.Errorf("write archive: %w", err)
	}
	for i, s := range sources {
		if err := copySource(tw, s, m.Files[i]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("write archive: %w", err)
	}
	if enc != nil {
		if err := enc.Close(); err != nil {
			return nil, fmt.Errorf("write archive: %w", err)
		}
	}
	return m, nil
}

func describe(s Source) (File, error) {
	fi, err := os.Lstat(s.Disk)
	if err != nil {
		return File{}, fmt.Errorf("archive %s: %w", s.Path, err)
	}
	if !fi.Mode().IsRegular() {
		return File{}, fmt.Errorf("archive %s: %s is not a regular file", s.Path, s.Disk)
	}
	f, err := os.Open(s.Disk)
	if err != nil {
		return File{}, fmt.Errorf("archive %s: %w", s.Path, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return File{}, fmt.Errorf("archive %s: %w", s.Path, err)
	}
	return File{Path: s.Path, Size: n, Mode: uint32(fi.Mode().Perm()), SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func copySource(tw *tar.Writer, s Source, want File) error {
	f, err := os.Open(s.Disk)
	if err != nil {
		return fmt.Errorf("archive %s: %w", s.Path, err)
	}
	defer f.Close()
	h := &tar.Header{Typeflag: tar.TypeReg, Name: filesPrefix + want.Path, Mode: int64(want.Mode), Size: want.Size, Format: tar.FormatPAX}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("archive %s: %w", s.Path, err)
	}
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(tw, sum), io.LimitReader(f, want.Size))
	if err != nil {
		return fmt.Errorf("archive %s: %w", s.Path, err)
	}
	if n != want.Size || hex.EncodeToString(sum.Sum(nil)) != want.SHA256 {
		return fmt.Errorf("archive %s: the file changed while it was archived", s.Path)
	}
	return nil
}

// check enforces the limits and path rules on a manifest.
func (m *Manifest) check() error {
	if m.Format != Format {
		return fmt.Errorf("format: %q, want %q", m.Format, Format)
	}
	if m.NodeKind != "authority" && m.NodeKind != "gateway" {
		return fmt.Errorf("node_kind: %q is neither authority nor gateway", m.NodeKind)
	}
	if len(m.Files) > MaxFiles {
		return fmt.Errorf("files: %d, more than %d", len(m.Files), MaxFiles)
	}
	if len(m.Meta) > maxMetaLen {
		return fmt.Errorf("meta: %d entries, more than %d", len(m.Meta), maxMetaLen)
	}
	seen := make(map[string]bool, len(m.Files))
	for i, f := range m.Files {
		if err := CheckPath(f.Path); err != nil {
			return fmt.Errorf("files[%d].path: %w", i, err)
		}
		if seen[f.Path] {
			return fmt.Errorf("files[%d].path: %q appears twice", i, f.Path)
		}
		seen[f.Path] = true
		if f.Size < 0 {
			return fmt.Errorf("files[%d].size: negative", i)
		}
		if f.Mode&^0o777 != 0 {
			return fmt.Errorf("files[%d].mode: %o is more than permission bits", i, f.Mode)
		}
		if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("files[%d].sha256: not a hex SHA-256", i)
		}
	}
	// A directory and a file of the same name cannot both be written.
	for p := range seen {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if seen[d] {
				return fmt.Errorf("files: %q is both a file and the directory of %q", d, p)
			}
		}
	}
	return nil
}

// CheckPath refuses a path that could leave the directory an archive is
// extracted into or name something other than a plain file below it:
// absolute, with "..", ".", empty components, backslashes or control
// characters, or too long.
func CheckPath(p string) error {
	if p == "" || len(p) > MaxPathLen {
		return fmt.Errorf("%q: empty or longer than %d bytes", p, MaxPathLen)
	}
	if strings.HasPrefix(p, "/") || filepath.IsAbs(p) {
		return fmt.Errorf("%q: absolute", p)
	}
	parts := strings.Split(p, "/")
	if len(parts) > MaxPathDepth {
		return fmt.Errorf("%q: more than %d components", p, MaxPathDepth)
	}
	for _, c := range parts {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("%q: empty, . or .. component", p)
		}
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == '\\' || r == ':' {
			return fmt.Errorf("%q: control character, backslash or colon", p)
		}
	}
	return nil
}

// Extract reads an archive from r into dst, a directory it creates (it
// must not exist). The manifest's signature is verified, then o.Trust is
// asked, before any file is written; each file is checked against the
// manifest as it is written, and the stream must end where the manifest
// says. On any error dst is removed: nothing half-read remains.
func Extract(r io.Reader, dst string, o ReadOptions) (_ *Manifest, err error) {
	if err := os.Mkdir(dst, 0o700); err != nil {
		return nil, fmt.Errorf("extract archive: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dst)
		}
	}()
	return read(r, o, func(f File, body io.Reader) error {
		p := filepath.Join(dst, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, os.FileMode(f.Mode&0o755)|0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, body); err != nil {
			out.Close()
			return err
		}
		if err := out.Sync(); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// Verify reads a whole archive and checks it as Extract does, writing
// nothing.
func Verify(r io.Reader, o ReadOptions) (*Manifest, error) {
	return read(r, o, func(f File, body io.Reader) error {
		_, err := io.Copy(io.Discard, body)
		return err
	})
}

// read walks an archive: manifest, signature, trust, then each file
// through put, whose reader fails if the bytes differ from the manifest.
func read(r io.Reader, o ReadOptions, put func(File, io.Reader) error) (*Manifest, error) {
	in, err := openStream(r, o.Passphrase)
	if err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	tr := tar.NewReader(in)
	mb, err := readEntry(tr, manifestName, MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	sig, err := readEntry(tr, sigName, maxSigSize)
	if err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	var m Manifest
	if err := cfg.Decode(mb, &m); err != nil {
		return nil, fmt.Errorf("read archive: manifest: %w", err)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("read archive: manifest: %w", err)
	}
	spki, err := base64.StdEncoding.DecodeString(m.SignerKey)
	if err != nil {
		return nil, fmt.Errorf("read archive: manifest: signer_key: %w", err)
	}
	pub, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return nil, fmt.Errorf("read archive: manifest: signer_key: %w", err)
	}
	if err := pki.VerifyDetached(string(sig), mb, pub); err != nil {
		return nil, fmt.Errorf("read archive: manifest signature: %w", err)
	}
	if o.Trust != nil {
		if err := o.Trust(&m, pub); err != nil {
			return &m, err
		}
	}
	for _, f := range m.Files {
		h, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("read archive: %s: %w", f.Path, unexpectedEOF(err))
		}
		if h.Typeflag != tar.TypeReg || h.Name != filesPrefix+f.Path || h.Size != f.Size {
			return nil, fmt.Errorf("read archive: entry %q (size %d) where the manifest has %s (size %d)", h.Name, h.Size, f.Path, f.Size)
		}
		body := &checked{r: tr, sum: sha256.New(), left: f.Size, want: f.SHA256}
		if err := put(f, body); err != nil {
			return nil, fmt.Errorf("read archive: %s: %w", f.Path, err)
		}
		if err := body.done(); err != nil {
			return nil, fmt.Errorf("read archive: %s: %w", f.Path, err)
		}
	}
	if h, err := tr.Next(); err != io.EOF {
		if err == nil {
			return nil, fmt.Errorf("read archive: entry %q is not in the manifest", h.Name)
		}
		return nil, fmt.Errorf("read archive: %w", unexpectedEOF(err))
	}
	// The rest of the stream (tar padding) must be read to its end, so
	// that an encrypted stream's final chunk is seen.
	if _, err := io.Copy(io.Discard, io.LimitReader(in, 1<<20)); err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	if f, ok := in.(interface{ finished() bool }); ok && !f.finished() {
		return nil, fmt.Errorf("read archive: data after the end of the archive")
	}
	return &m, nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func readEntry(tr *tar.Reader, name string, max int64) ([]byte, error) {
	h, err := tr.Next()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, unexpectedEOF(err))
	}
	if h.Typeflag != tar.TypeReg || h.Name != name {
		return nil, fmt.Errorf("entry %q where %s belongs", h.Name, name)
	}
	if h.Size < 0 || h.Size > max {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", name, h.Size, max)
	}
	b, err := io.ReadAll(io.LimitReader(tr, max))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}

// checked passes a file's bytes through, counting and hashing them.
type checked struct {
	r   io.Reader
	sum interface {
		io.Writer
		Sum([]byte) []byte
	}
	left int64
	want string
}

func (c *checked) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.sum.Write(p[:n])
	c.left -= int64(n)
	if err == io.EOF && c.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err == nil && c.left == 0 && hex.EncodeToString(c.sum.Sum(nil)) != c.want {
		return n, errors.New("content does not match the manifest's SHA-256")
	}
	return n, err
}

func (c *checked) done() error {
	if c.left != 0 {
		return io.ErrUnexpectedEOF
	}
	if hex.EncodeToString(c.sum.Sum(nil)) != c.want {
		return errors.New("content does not match the manifest's SHA-256")
	}
	return nil
}
