package instrument

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

func instantiate(t *testing.T, bin []byte) api.Module {
	t.Helper()
	ctx := context.Background()
	out, err := Rewrite(bin)
	if err != nil {
		t.Fatal(err)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler()) // close-on-context-done off
	t.Cleanup(func() { _ = rt.Close(ctx) })
	mod, err := rt.InstantiateWithConfig(ctx, out, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatal(err)
	}
	return mod
}

// TestStop: a spinning loop and a loop-free exponential recursion both
// stop shortly after the stop global is set, and a GC started while they
// spin completes (the guest reaches Go every Fuel iterations).
func TestStop(t *testing.T) {
	bin, err := os.ReadFile("testdata/forever.wasm")
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range []string{"run", "recurse"} {
		t.Run(fn, func(t *testing.T) {
			mod := instantiate(t, bin)
			stop := mod.ExportedGlobal(StopExport).(api.MutableGlobal)
			done := make(chan error, 1)
			go func() { _, err := mod.ExportedFunction(fn).Call(context.Background()); done <- err }()
			time.Sleep(20 * time.Millisecond)
			gc := make(chan struct{})
			go func() { runtime.GC(); close(gc) }()
			select {
			case <-gc:
			case <-time.After(10 * time.Second):
				t.Fatal("GC blocked by a spinning guest")
			}
			select {
			case err := <-done:
				t.Fatalf("returned before stop: %v", err)
			default:
			}
			stop.Set(1)
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("stopped guest returned no error")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("guest did not stop")
			}
		})
	}
}

func TestBehaviourKept(t *testing.T) {
	bin, err := os.ReadFile("testdata/forever.wasm")
	if err != nil {
		t.Fatal(err)
	}
	mod := instantiate(t, bin)
	res, err := mod.ExportedFunction("add").Call(context.Background(), 2, 3)
	if err != nil || res[0] != 5 {
		t.Fatalf("add = %v, %v", res, err)
	}
}

// TestRewriteCompiles rewrites every module we have (the wasm package's
// test guests, the http-wasm TCK guest) and checks wazero accepts the
// result and it keeps its imports and exports.
func TestRewriteCompiles(t *testing.T) {
	paths, _ := filepath.Glob("../../testdata/*.wasm")
	paths = append(paths, "testdata/forever.wasm", "../../../../shared/tck/http-wasm-tck.wasm")
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	for _, p := range paths {
		bin, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%v (the TCK guest is expected at ../shared/tck/ next to the repository)", err)
		}
		out, err := Rewrite(bin)
		if strings.HasSuffix(p, "startloop.wasm") {
			if !errors.Is(err, ErrUnsupported) {
				t.Errorf("%s: a start section must be refused, got %v", p, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		want, err := rt.CompileModule(ctx, bin)
		if err != nil {
			continue // invalid on purpose (e.g. over a memory cap): nothing to compare
		}
		got, err := rt.CompileModule(ctx, out)
		if err != nil {
			t.Errorf("%s: rewritten module does not compile: %v", p, err)
			continue
		}
		if len(got.ExportedFunctions()) != len(want.ExportedFunctions()) ||
			len(got.ImportedFunctions()) != len(want.ImportedFunctions()) {
			t.Errorf("%s: exports/imports changed", p)
		}
		if _, ok := got.ExportedFunctions()[StopExport]; ok {
			t.Errorf("%s: stop exported as a function", p)
		}
	}
}

func TestRefused(t *testing.T) {
	for name, bin := range map[string][]byte{
		"empty":     nil,
		"not wasm":  []byte("hello world"),
		"truncated": {0, 'a', 's', 'm', 1, 0, 0, 0, 1, 10},
		"no memory": {0, 'a', 's', 'm', 1, 0, 0, 0},
	} {
		if _, err := Rewrite(bin); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: err = %v, want ErrUnsupported", name, err)
		}
	}
}

// FuzzRewrite: arbitrary bytes never panic; whatever Rewrite accepts and
// wazero compiles stays compilable.
func FuzzRewrite(f *testing.F) {
	for _, p := range []string{"testdata/forever.wasm", "../../testdata/noop.wasm", "../../testdata/loop.wasm"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	f.Cleanup(func() { _ = rt.Close(ctx) })
	f.Fuzz(func(t *testing.T, bin []byte) {
		out, err := Rewrite(bin)
		if err != nil {
			return
		}
		if _, err := rt.CompileModule(ctx, bin); err != nil {
			return
		}
		if _, err := rt.CompileModule(ctx, out); err != nil {
			t.Fatalf("valid module became invalid: %v", err)
		}
	})
}

// BenchmarkRewrite: load-time cost of instrumenting the 100 KB TCK guest.
func BenchmarkRewrite(b *testing.B) {
	bin, err := os.ReadFile("../../../../shared/tck/http-wasm-tck.wasm")
	if err != nil {
		b.Fatalf("%v (the TCK guest is expected at ../shared/tck/ next to the repository)", err)
	}
	b.SetBytes(int64(len(bin)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Rewrite(bin); err != nil {
			b.Fatal(err)
		}
	}
}
