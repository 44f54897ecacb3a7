// Package manifest is the standalone source: it reads Kubernetes objects from
// YAML files in a folder, exactly as they would come from a cluster, and
// watches the folder for changes.
//
// # Notes
//
//   - Only the files directly in the folder are read (not sub-folders), and
//     only those named *.yaml or *.yml that do not start with "." (editors'
//     lock and swap files do).
//   - A file may hold many documents separated by "---" lines, and a
//     document may be a v1 List. Each document is decoded strictly, with the
//     real Kubernetes types: an unknown field, an unknown kind or malformed
//     YAML skips that document with a warning naming the file, the document
//     number and its line; every other document still loads.
//   - Defaults the API server or kubectl would apply are applied: namespace
//     "default" for namespaced objects without one, Secret stringData merged
//     into data, Secret type Opaque.
//   - The same object (kind, namespace, name) written twice: the first one
//     wins, in file name order then document order, and the others are
//     warned about.
//   - Warnings about a file or a document, which has no Kubernetes identity,
//     name the object as Kind "File" with the file's path as Name.
//   - Nothing sets metadata.creationTimestamp: manifests without one tie on
//     age, so route conflicts between them are decided by namespace/name.
package manifest

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/translate"
)

// maxFileSize bounds the size of one manifest file.
const maxFileSize = 16 << 20

// Load reads the manifest files in dir. The error is only for a dir that
// cannot be read; a problem with a file or document is a warning, and the
// rest still loads. Objects are in file name order, then document order.
func Load(dir string) (translate.Input, []model.Warning, error) {
	in, warns, _, err := load(dir)
	return in, warns, err
}

// Decode decodes the documents of one file's contents; name is the file
// named in warnings.
func Decode(name string, data []byte) (translate.Input, []model.Warning) {
	objs, errs := decodeFile(name, data)
	warns := docWarnings(errs)
	in, dups := build(objs)
	return in, append(warns, dups...)
}

// load is Load that also returns a digest of the files read, so that a
// watcher can tell whether anything changed.
func load(dir string) (translate.Input, []model.Warning, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	entries, err := os.ReadDir(dir)
	if err != nil {
		return translate.Input{}, nil, sum, fmt.Errorf("manifest dir %q: %w", dir, err)
	}
	h := sha256.New()
	var objs []object
	var warns []model.Warning
	for _, e := range entries {
		if !isManifestName(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := readFile(path)
		if err != nil {
			if !errors.Is(err, errIsDir) {
				warns = append(warns, fileWarning(path, oneLine(err)+"; file ignored"))
				writeDigest(h, path, []byte("\x00unreadable"))
			}
			continue
		}
		writeDigest(h, path, data)
		o, errs := decodeFile(path, data)
		objs = append(objs, o...)
		warns = append(warns, docWarnings(errs)...)
	}
	in, dups := build(objs)
	h.Sum(sum[:0])
	return in, append(warns, dups...), sum, nil
}

// isManifestName reports whether a file name is one Load reads.
func isManifestName(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

var errIsDir = errors.New("is a directory")

// readFile reads a regular file (following symlinks) of at most maxFileSize.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, errIsDir
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxFileSize)
	}
	return data, nil
}

func writeDigest(h io.Writer, path string, data []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(path)))
	h.Write(n[:])
	h.Write([]byte(path))
	binary.BigEndian.PutUint64(n[:], uint64(len(data)))
	h.Write(n[:])
	h.Write(data)
}

// fileWarning is a warning about a file (or a document in it), which has no
// Kubernetes identity yet.
func fileWarning(file, msg string) model.Warning {
	return model.Warning{Object: model.ObjectRef{Kind: "File", Name: file}, Message: msg}
}

func docWarnings(errs []docError) []model.Warning {
	out := make([]model.Warning, 0, len(errs))
	for _, e := range errs {
		out = append(out, fileWarning(e.pos.file, e.pos.String()+": "+e.msg))
	}
	return out
}

// build sorts decoded objects into an Input, dropping duplicates.
func build(objs []object) (translate.Input, []model.Warning) {
	var in translate.Input
	var warns []model.Warning
	first := make(map[model.ObjectRef]position, len(objs))
	for _, o := range objs {
		r := model.ObjectRef{Kind: o.kind, Namespace: o.namespace, Name: o.name}
		if p, dup := first[r]; dup {
			warns = append(warns, model.Warning{Object: r, Message: fmt.Sprintf(
				"defined again in %s %s; the first definition, in %s %s, is used", o.pos.file, o.pos, p.file, p)})
			continue
		}
		first[r] = o.pos
		switch v := o.obj.(type) {
		case *networkingv1.Ingress:
			in.Ingresses = append(in.Ingresses, v)
		case *networkingv1.IngressClass:
			in.IngressClasses = append(in.IngressClasses, v)
		case *corev1.Service:
			in.Services = append(in.Services, v)
		case *discoveryv1.EndpointSlice:
			in.EndpointSlices = append(in.EndpointSlices, v)
		case *corev1.Secret:
			in.Secrets = append(in.Secrets, v)
		}
	}
	return in, warns
}
