package manifest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/translate"
)

// names lists the objects of an Input as "Kind ns/name", in Input order.
func names(in translate.Input) []string {
	var out []string
	for _, o := range in.Ingresses {
		out = append(out, "Ingress "+o.Namespace+"/"+o.Name)
	}
	for _, o := range in.IngressClasses {
		out = append(out, "IngressClass "+o.Name)
	}
	for _, o := range in.Services {
		out = append(out, "Service "+o.Namespace+"/"+o.Name)
	}
	for _, o := range in.EndpointSlices {
		out = append(out, "EndpointSlice "+o.Namespace+"/"+o.Name)
	}
	for _, o := range in.Secrets {
		out = append(out, "Secret "+o.Namespace+"/"+o.Name)
	}
	return out
}

func warningStrings(ws []model.Warning) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.String())
	}
	return out
}

func TestDecode(t *testing.T) {
	tests := map[string]struct {
		yaml     string
		objects  []string
		warnings []string
	}{
		"empty file": {
			yaml: "",
		},
		"only comments and separators": {
			yaml: "# nothing here\n---\n---\n# still nothing\n",
		},
		"multi-document, leading separator, CRLF": {
			yaml: "---\r\napiVersion: v1\r\nkind: Service\r\nmetadata: {name: a}\r\n---\r\n" +
				"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: b, namespace: x}\n--- \n" +
				"apiVersion: v1\nkind: Secret\nmetadata: {name: c}\n",
			objects: []string{"Ingress x/b", "Service default/a", "Secret default/c"},
		},
		"malformed YAML between good documents": {
			yaml: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\n" +
				"apiVersion: v1\nkind: Service\nmetadata: {name: [}\n---\n" +
				"apiVersion: v1\nkind: Service\nmetadata: {name: c}\n",
			objects: []string{"Service default/a", "Service default/c"},
			warnings: []string{
				"File f.yaml: document 2 (line 5): invalid YAML: line 7: did not find expected node content; document ignored",
			},
		},
		"unknown kind and unsupported apiVersion": {
			yaml: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\n---\n" +
				"apiVersion: networking.k8s.io/v1beta1\nkind: Ingress\nmetadata: {name: b}\n",
			warnings: []string{
				"File f.yaml: document 1 (line 1): kind Deployment (apiVersion apps/v1) is not read by sluice (it reads Ingress, IngressClass, Service, EndpointSlice and Secret); ignored",
				"File f.yaml: document 2 (line 5): Ingress: apiVersion networking.k8s.io/v1beta1 is not supported, use networking.k8s.io/v1; ignored",
			},
		},
		"unknown, duplicate and wrongly cased fields": {
			yaml: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {portz: []}\n---\n" +
				"apiVersion: v1\nkind: Service\nmetadata: {name: b}\nSpec: {}\n---\n" +
				"apiVersion: v1\nkind: Service\nmetadata: {name: c}\nspec: {}\nspec: {}\n",
			warnings: []string{
				`File f.yaml: document 1 (line 1): Service default/a: unknown field "spec.portz"; ignored`,
				`File f.yaml: document 2 (line 6): Service default/b: unknown field "Spec"; ignored`,
				`File f.yaml: document 3 (line 11): invalid YAML: line 15: key "spec" already set in map; document ignored`,
			},
		},
		"wrong value type": {
			yaml: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: eighty}]}\n",
			warnings: []string{
				`File f.yaml: document 1 (line 1): Service default/a: json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type int32; ignored`,
			},
		},
		"not an object": {
			yaml: "- a\n- b\n---\njust a string\n---\n{}\n",
			warnings: []string{
				"File f.yaml: document 1 (line 1): not a Kubernetes object (a mapping with apiVersion and kind); document ignored",
				"File f.yaml: document 2 (line 4): not a Kubernetes object (a mapping with apiVersion and kind); document ignored",
				"File f.yaml: document 3 (line 6): apiVersion and kind are required; ignored",
			},
		},
		"missing name": {
			yaml:     "apiVersion: v1\nkind: Service\nmetadata: {namespace: x}\n",
			warnings: []string{"File f.yaml: document 1 (line 1): Service: metadata.name is required; ignored"},
		},
		"List with a bad item": {
			yaml: "apiVersion: v1\nkind: List\nitems:\n" +
				"- {apiVersion: v1, kind: Service, metadata: {name: a}}\n" +
				"- {apiVersion: v1, kind: Pod, metadata: {name: b}}\n" +
				"- {apiVersion: v1, kind: List, items: []}\n" +
				"- {apiVersion: v1, kind: Secret, metadata: {name: c}}\n",
			objects: []string{"Service default/a", "Secret default/c"},
			warnings: []string{
				"File f.yaml: document 1 (line 1) items[1]: kind Pod (apiVersion v1) is not read by sluice (it reads Ingress, IngressClass, Service, EndpointSlice and Secret); ignored",
				"File f.yaml: document 1 (line 1) items[2]: kind List (apiVersion v1) is not read by sluice (it reads Ingress, IngressClass, Service, EndpointSlice and Secret); ignored",
			},
		},
		"List with an unknown field": {
			yaml:     "apiVersion: v1\nkind: List\nitemz: []\n",
			warnings: []string{`File f.yaml: document 1 (line 1): v1 List: unknown field "itemz"; document ignored`},
		},
		"duplicate object: the first wins": {
			yaml: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 1}]}\n---\n" +
				"apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: default}\nspec: {ports: [{port: 2}]}\n---\n" +
				"apiVersion: v1\nkind: Secret\nmetadata: {name: a}\n",
			objects: []string{"Service default/a", "Secret default/a"},
			warnings: []string{
				"Service default/a: defined again in f.yaml document 2 (line 6); the first definition, in f.yaml document 1 (line 1), is used",
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			in, warnings := Decode("f.yaml", []byte(tt.yaml))
			if got := names(in); !reflect.DeepEqual(got, tt.objects) {
				t.Errorf("objects:\n got: %q\nwant: %q", got, tt.objects)
			}
			if got := warningStrings(warnings); !reflect.DeepEqual(got, tt.warnings) {
				t.Errorf("warnings:\n got: %q\nwant: %q", got, tt.warnings)
			}
		})
	}
}

// TestDecodeDefaults checks the defaults the API server and kubectl apply.
func TestDecodeDefaults(t *testing.T) {
	in, warnings := Decode("f.yaml", []byte(`
apiVersion: v1
kind: Secret
metadata: {name: s}
data:
  a: b2xk        # "old"
  b: Ymlu        # "bin"
stringData:
  a: new
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: c, namespace: not-for-cluster-scoped}
spec: {controller: x}
`))
	if len(warnings) != 0 {
		t.Fatalf("unexpected warnings: %v", warnings)
	}
	if len(in.Secrets) != 1 || len(in.IngressClasses) != 1 {
		t.Fatalf("got %q", names(in))
	}
	s := in.Secrets[0]
	if s.Namespace != "default" || s.Type != corev1.SecretTypeOpaque || s.StringData != nil {
		t.Errorf("secret namespace %q type %q stringData %v, want default, Opaque, nil", s.Namespace, s.Type, s.StringData)
	}
	if got := map[string]string{"a": string(s.Data["a"]), "b": string(s.Data["b"])}; !reflect.DeepEqual(got, map[string]string{"a": "new", "b": "bin"}) {
		t.Errorf("secret data %v, want stringData merged over data", got)
	}
	if ns := in.IngressClasses[0].Namespace; ns != "" {
		t.Errorf("IngressClass namespace %q, want none (cluster-scoped)", ns)
	}
}

// TestLoad reads testdata/mixed: a folder as a developer might leave it.
func TestLoad(t *testing.T) {
	dir := filepath.Join("testdata", "mixed")
	in, warnings, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	wantObjects := []string{
		"Ingress default/shop",
		"IngressClass sluice",
		"Service shop/web",
		"EndpointSlice shop/web-1",
		"Secret default/creds",
	}
	if got := names(in); !reflect.DeepEqual(got, wantObjects) {
		t.Errorf("objects:\n got: %q\nwant: %q", got, wantObjects)
	}
	f1, f2 := filepath.Join(dir, "10-shop.yaml"), filepath.Join(dir, "20-endpoints.yml")
	wantWarnings := []string{
		"File " + f1 + ": document 2 (line 20): invalid YAML: line 25: did not find expected key; document ignored",
		"File " + f1 + ": document 3 (line 27): kind Deployment (apiVersion apps/v1) is not read by sluice (it reads Ingress, IngressClass, Service, EndpointSlice and Secret); ignored",
		"File " + f1 + `: document 4 (line 33): Ingress default/typo: unknown field "spec.rulez"; ignored`,
		"File " + f1 + ": document 5 (line 40) items[1]: Service: metadata.name is required; ignored",
		"Service shop/web: defined again in " + f2 + " document 2 (line 13); the first definition, in " + f1 + " document 5 (line 40) items[0], is used",
	}
	if got := warningStrings(warnings); !reflect.DeepEqual(got, wantWarnings) {
		t.Errorf("warnings:\n got: %q\nwant: %q", got, wantWarnings)
	}
	if got := in.Services[0].Spec.Ports[0].Name; got != "http" {
		t.Errorf("Service shop/web port %q: the first definition must win", got)
	}
}

func TestLoadErrors(t *testing.T) {
	if _, _, err := Load(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Load of a missing dir: err = %v, want one naming the dir", err)
	}
	file := filepath.Join(t.TempDir(), "file.yaml")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(file); err == nil {
		t.Error("Load of a file: err = nil, want an error")
	}

	// A dangling symlink and a folder named like a manifest: a warning and
	// nothing, not an error.
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "dangling.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "folder.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	in, warnings, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(in); got != nil {
		t.Errorf("objects %q, want none", got)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0].String(), "dangling.yaml") {
		t.Errorf("warnings %q, want one naming dangling.yaml", warningStrings(warnings))
	}
}

func TestSplitDocuments(t *testing.T) {
	tests := map[string]struct {
		in    string
		docs  []string
		lines []int
	}{
		"empty":            {"", []string{""}, []int{1}},
		"one":              {"a: 1\n", []string{"a: 1\n"}, []int{1}},
		"no final newline": {"a: 1\n---\nb: 2", []string{"a: 1\n", "b: 2"}, []int{1, 3}},
		"separator last":   {"a: 1\n---", []string{"a: 1\n", ""}, []int{1, 3}},
		"trailing space":   {"a: 1\n---  \t\nb: 2\n", []string{"a: 1\n", "b: 2\n"}, []int{1, 3}},
		"not separators":   {"a: ---\n----\n--- x\n", []string{"a: ---\n----\n--- x\n"}, []int{1}},
		"indented string":  {"a: |\n  ---\n", []string{"a: |\n  ---\n"}, []int{1}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			docs, lines := splitDocuments([]byte(tt.in))
			var got []string
			for _, d := range docs {
				got = append(got, string(d))
			}
			if !reflect.DeepEqual(got, tt.docs) || !reflect.DeepEqual(lines, tt.lines) {
				t.Errorf("got %q at lines %v, want %q at lines %v", got, lines, tt.docs, tt.lines)
			}
		})
	}
}

// FuzzLoadDocument feeds arbitrary bytes to the per-document decoder: it must
// never panic, and whatever it returns must be a named object of a
// supported kind, defaulted like the API server would.
func FuzzLoadDocument(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/mixed/*.y*ml")
	more, _ := filepath.Glob("../translate/testdata/*.yaml")
	for _, p := range append(seeds, more...) {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		docs, _ := splitDocuments(data)
		for _, d := range docs {
			f.Add(d)
		}
	}
	f.Add([]byte("apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: Service, metadata: {name: a}}]\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, errs := decodeDocument(position{file: "f", doc: 1, line: 1, item: -1}, data)
		for _, o := range objs {
			info, ok := kinds[o.kind]
			if !ok || o.name == "" || o.obj == nil {
				t.Fatalf("bad object %+v", o)
			}
			if info.namespaced == (o.namespace == "") {
				t.Fatalf("%s %q: namespace %q", o.kind, o.name, o.namespace)
			}
		}
		for _, e := range errs {
			if e.msg == "" {
				t.Fatal("empty error message")
			}
		}
	})
}
