package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/sluicegw/sluice/core/internal/model"
)

// object is one decoded Kubernetes object and where it was written.
type object struct {
	kind      string // "Ingress", "IngressClass", "Service", "EndpointSlice", "Secret"
	namespace string // "" for IngressClass
	name      string
	obj       any // *networkingv1.Ingress, ... matching kind
	pos       position
}

// position names a document (or an item of a List document) in a file.
type position struct {
	file string
	doc  int // 1-based, counting every document of the file
	line int // 1-based line where the document starts
	item int // 0-based index in a List's items, -1 outside a List
}

func (p position) String() string {
	s := fmt.Sprintf("document %d (line %d)", p.doc, p.line)
	if p.item >= 0 {
		s += fmt.Sprintf(" items[%d]", p.item)
	}
	return s
}

// docError is a problem with one document (or List item), which is skipped.
type docError struct {
	pos position
	msg string
}

// kindInfo is how one supported kind is decoded.
type kindInfo struct {
	apiVersion string
	namespaced bool
	newObj     func() metav1.Object
}

// kinds are the object kinds Sluice reads, by kind.
var kinds = map[string]kindInfo{
	"Ingress":       {"networking.k8s.io/v1", true, func() metav1.Object { return &networkingv1.Ingress{} }},
	"IngressClass":  {"networking.k8s.io/v1", false, func() metav1.Object { return &networkingv1.IngressClass{} }},
	"Service":       {"v1", true, func() metav1.Object { return &corev1.Service{} }},
	"Secret":        {"v1", true, func() metav1.Object { return &corev1.Secret{} }},
	"EndpointSlice": {"discovery.k8s.io/v1", true, func() metav1.Object { return &discoveryv1.EndpointSlice{} }},
}

// defaultNamespace is the namespace of namespaced objects written without
// one, as kubectl apply does with the default context.
const defaultNamespace = "default"

// splitDocuments splits a YAML stream on "---" separator lines, the way
// kubectl does: a line that is "---" followed only by white space. It returns
// every document with the 1-based line of its first line.
func splitDocuments(data []byte) (docs [][]byte, lines []int) {
	start, startLine, line := 0, 1, 1
	for off := 0; off <= len(data); line++ {
		end := bytes.IndexByte(data[off:], '\n')
		next := len(data) + 1
		if end >= 0 {
			end += off
			next = end + 1
		} else {
			end = len(data)
		}
		l := data[off:end]
		if rest, ok := bytes.CutPrefix(l, []byte("---")); ok && len(bytes.TrimSpace(rest)) == 0 {
			docs = append(docs, data[start:off])
			lines = append(lines, startLine)
			start, startLine = next, line+1
			if start > len(data) {
				start = len(data)
			}
		}
		off = next
	}
	docs = append(docs, data[start:])
	lines = append(lines, startLine)
	return docs, lines
}

// decodeFile decodes every document of one file. Empty documents (only white
// space and comments) are skipped without a warning and not counted.
func decodeFile(file string, data []byte) ([]object, []docError) {
	var objs []object
	var errs []docError
	docs, lines := splitDocuments(data)
	n := 0
	for i, d := range docs {
		if !hasContent(d) {
			continue
		}
		n++
		pos := position{file: file, doc: n, line: lines[i], item: -1}
		o, e := decodeDocument(pos, d)
		objs = append(objs, o...)
		errs = append(errs, e...)
	}
	return objs, errs
}

// hasContent reports whether a document has a line that is neither blank nor
// a comment.
func hasContent(doc []byte) bool {
	for l := range bytes.Lines(doc) {
		l = bytes.TrimSpace(l)
		if len(l) > 0 && l[0] != '#' {
			return true
		}
	}
	return false
}

// parserProblems are the syntax errors that the YAML parser (as opposed to
// its scanner) reports; it numbers their lines from 0, so they read one line
// early. See go.yaml.in/yaml/v2 parser.fail.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// yamlError rewrites a YAML error of a document that starts at line start:
// one line, without library prefixes, with line numbers of the file.
func yamlError(err error, start int) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	parts := strings.Split(msg, "\n")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if rest, ok := strings.CutPrefix(p, "line "); ok {
			if num, problem, ok := strings.Cut(rest, ": "); ok {
				if n, err := strconv.Atoi(num); err == nil {
					if parserProblems[problem] {
						n++
					}
					p = fmt.Sprintf("line %d: %s", start+n-1, problem)
				}
			}
		}
		parts[i] = p
	}
	return strings.Join(parts, "; ")
}

// decodeDocument decodes one YAML document: a supported object, a v1 List of
// them, or nothing. It never panics.
func decodeDocument(pos position, doc []byte) ([]object, []docError) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, []docError{{pos, "invalid YAML: " + yamlError(err, pos.line) + "; document ignored"}}
	}
	j = bytes.TrimSpace(j)
	if len(j) == 0 || string(j) == "null" {
		return nil, nil
	}
	var tm metav1.TypeMeta
	if len(j) == 0 || j[0] != '{' || json.Unmarshal(j, &tm) != nil {
		return nil, []docError{{pos, "not a Kubernetes object (a mapping with apiVersion and kind); document ignored"}}
	}
	if tm.APIVersion == "v1" && tm.Kind == "List" {
		return decodeList(pos, j)
	}
	o, e := decodeObject(pos, j)
	if e != "" {
		return nil, []docError{{pos, e}}
	}
	return []object{o}, nil
}

// list is a v1 List: a document that holds other objects.
type list struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []json.RawMessage `json:"items"`
}

func decodeList(pos position, j []byte) ([]object, []docError) {
	var l list
	strict, err := kjson.UnmarshalStrict(j, &l)
	if err == nil {
		err = errors.Join(strict...)
	}
	if err != nil {
		return nil, []docError{{pos, "v1 List: " + oneLine(err) + "; document ignored"}}
	}
	var objs []object
	var errs []docError
	for i, item := range l.Items {
		ipos := pos
		ipos.item = i
		o, e := decodeObject(ipos, item)
		if e != "" {
			errs = append(errs, docError{ipos, e})
			continue
		}
		objs = append(objs, o)
	}
	return objs, errs
}

// decodeObject strictly decodes one JSON object of a supported kind. A
// non-empty message says why it was skipped.
func decodeObject(pos position, j []byte) (object, string) {
	var tm metav1.TypeMeta
	if json.Unmarshal(j, &tm) != nil {
		return object{}, "not a Kubernetes object (a mapping with apiVersion and kind); ignored"
	}
	if tm.APIVersion == "" || tm.Kind == "" {
		return object{}, "apiVersion and kind are required; ignored"
	}
	info, ok := kinds[tm.Kind]
	if !ok {
		return object{}, fmt.Sprintf("kind %s (apiVersion %s) is not read by sluice (it reads Ingress, IngressClass, Service, EndpointSlice and Secret); ignored", tm.Kind, tm.APIVersion)
	}
	if tm.APIVersion != info.apiVersion {
		return object{}, fmt.Sprintf("%s: apiVersion %s is not supported, use %s; ignored", tm.Kind, tm.APIVersion, info.apiVersion)
	}
	obj := info.newObj()
	strict, err := kjson.UnmarshalStrict(j, obj)
	if err == nil {
		err = errors.Join(strict...)
	}
	if !info.namespaced {
		obj.SetNamespace("")
	} else if obj.GetNamespace() == "" {
		obj.SetNamespace(defaultNamespace)
	}
	what := tm.Kind
	if n := obj.GetName(); n != "" {
		what = model.ObjectRef{Kind: tm.Kind, Namespace: obj.GetNamespace(), Name: n}.String()
	}
	if err != nil {
		return object{}, what + ": " + oneLine(err) + "; ignored"
	}
	if obj.GetName() == "" {
		return object{}, what + ": metadata.name is required; ignored"
	}
	if s, ok := obj.(*corev1.Secret); ok {
		applySecretDefaults(s)
	}
	return object{kind: tm.Kind, namespace: obj.GetNamespace(), name: obj.GetName(), obj: obj, pos: pos}, ""
}

// applySecretDefaults does what the API server does on create: stringData is
// merged into data (stringData wins), and the type defaults to Opaque.
func applySecretDefaults(s *corev1.Secret) {
	if len(s.StringData) > 0 {
		if s.Data == nil {
			s.Data = make(map[string][]byte, len(s.StringData))
		}
		for k, v := range s.StringData {
			s.Data[k] = []byte(v)
		}
		s.StringData = nil
	}
	if s.Type == "" {
		s.Type = corev1.SecretTypeOpaque
	}
}

// oneLine joins a multi-line error into one line.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
