package translate

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/sluicegw/sluice/core/internal/model"
)

// FiltersAnnotation holds a route's filter chain: a YAML (or JSON) list,
// run in order. See DESIGN.md "Attaching filters to routes".
const FiltersAnnotation = "sluice.io/filters"

// filterAnnotations are the annotations for the filter chain
// (sluice.io/filters) that translate honours.
var filterAnnotations = map[string]bool{FiltersAnnotation: true}

// filterEntry is one list item of the annotation, decoded strictly.
type filterEntry struct {
	Name   string          `json:"name"`
	Module string          `json:"module,omitempty"`
	SHA256 string          `json:"sha256,omitempty"`
	Config json.RawMessage `json:"config,omitempty"`
	Fail   string          `json:"fail,omitempty"`
}

var filterName = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)

// ingressFilters parses the filter chain of ing. An invalid annotation is
// reported as the error text that every route of ing carries in
// FilterError, so those routes answer 503 instead of running unfiltered.
func (b *builder) ingressFilters(ing *networkingv1.Ingress, src model.ObjectRef) ([]model.FilterRef, string) {
	raw, ok := ing.Annotations[FiltersAnnotation]
	if !ok {
		return nil, ""
	}
	refs, err := ParseFilters(raw, b.opts.KnownFilters)
	if err != nil {
		msg := fmt.Sprintf("metadata.annotations[%q]%s", FiltersAnnotation, err)
		b.warn(src, msg+"; its routes answer 503 until it is fixed")
		return nil, msg
	}
	return refs, ""
}

// ParseFilters parses the value of the sluice.io/filters annotation.
// known, when non-nil, reports whether a filter name without a module is
// defined (a built-in or a filter named in the config file). Errors start
// with the entry's index, e.g. `[1].sha256: …`, or `: …` for the whole list.
func ParseFilters(value string, known func(name string) bool) ([]model.FilterRef, error) {
	js, err := yaml.YAMLToJSON([]byte(value))
	if err != nil {
		return nil, fmt.Errorf(": not YAML: %v", err)
	}
	js = bytes.TrimSpace(js)
	if bytes.Equal(js, []byte("null")) {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(js, &items); err != nil {
		return nil, fmt.Errorf(": must be a list of filters (- name: …)")
	}
	out := make([]model.FilterRef, 0, len(items))
	for i, item := range items {
		dec := json.NewDecoder(bytes.NewReader(item))
		dec.DisallowUnknownFields()
		var e filterEntry
		if err := dec.Decode(&e); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) && te.Field != "" {
				return nil, fmt.Errorf("[%d].%s: must be a %s, not a %s (quote it in YAML)", i, te.Field, te.Type, te.Value)
			}
			return nil, fmt.Errorf("[%d]: %s", i, strings.TrimPrefix(err.Error(), "json: "))
		}
		ref, err := e.validate(known)
		if err != nil {
			return nil, fmt.Errorf("[%d]%w", i, err)
		}
		out = append(out, ref)
	}
	return out, nil
}

func (e filterEntry) validate(known func(string) bool) (model.FilterRef, error) {
	ref := model.FilterRef{Name: e.Name, Module: e.Module, SHA256: strings.ToLower(e.SHA256), Fail: e.Fail}
	if !filterName.MatchString(e.Name) {
		return ref, fmt.Errorf(".name: %q must be lowercase letters, digits, '.', '_' or '-' (1-63)", e.Name)
	}
	if ref.SHA256 != "" {
		if b, err := hex.DecodeString(ref.SHA256); err != nil || len(b) != 32 {
			return ref, fmt.Errorf(".sha256: %q is not 64 hex digits", e.SHA256)
		}
	}
	switch {
	case e.Module == "":
		if ref.SHA256 != "" {
			return ref, fmt.Errorf(".sha256: set without a module")
		}
		if known != nil && !known(e.Name) {
			return ref, fmt.Errorf(".name: no built-in or configured filter %q (inline modules need module:)", e.Name)
		}
	case strings.HasPrefix(e.Module, "https://"):
		if ref.SHA256 == "" {
			return ref, fmt.Errorf(".sha256: required for an https:// module")
		}
	case strings.HasPrefix(e.Module, "file://"):
		p := strings.TrimPrefix(e.Module, "file://")
		if !path.IsAbs(p) || path.Clean(p) != p {
			return ref, fmt.Errorf(".module: %q must be file:// with an absolute, clean path", e.Module)
		}
	case strings.HasPrefix(e.Module, "builtin:"):
		if known != nil && !known(strings.TrimPrefix(e.Module, "builtin:")) {
			return ref, fmt.Errorf(".module: no built-in filter %q", strings.TrimPrefix(e.Module, "builtin:"))
		}
	default:
		return ref, fmt.Errorf(".module: %q must start with file://, https:// or builtin:", e.Module)
	}
	switch e.Fail {
	case "", "closed", "open":
	default:
		return ref, fmt.Errorf(".fail: %q is not closed or open", e.Fail)
	}
	if len(e.Config) > 0 && !bytes.Equal(e.Config, []byte("null")) {
		var c bytes.Buffer
		if err := json.Compact(&c, e.Config); err != nil {
			return ref, fmt.Errorf(".config: %v", err)
		}
		ref.Config = c.Bytes()
	}
	return ref, nil
}
