// Package instrument rewrites a WebAssembly binary so that it stays
// interruptible without wazero's close-on-context-done, which costs a
// goroutine per call and a call into Go at every loop iteration.
//
// The rewritten module has two more mutable i32 globals, fuel and stop
// (exported as StopExport), and one more function, check. At every loop
// header, and at the entry of every function that calls another, it runs
//
//	if fuel == 0 { check() }
//	fuel--
//
// and check does
//
//	fuel = Fuel
//	memory.grow(0)   // leaves native code: a Go preemption point
//	if stop { unreachable }
//
// So a spinning guest reaches Go every Fuel loop iterations or calls (the
// garbage collector's stop-the-world can then complete; without this a
// spinning guest freezes the whole process at the next GC), and traps
// there once the host has set stop. Nothing is renumbered: the new types,
// globals and function are appended after the existing ones.
package instrument

import (
	"errors"
	"fmt"
)

// StopExport is the name of the exported stop global.
const StopExport = "__sluice_stop"

// Fuel is the number of loop iterations or calls between two exits to Go.
const Fuel = 10000

// ErrUnsupported wraps every reason a module cannot be rewritten (an
// opcode or encoding this package does not know). The caller can then run
// the module with close-on-context-done instead.
var ErrUnsupported = errors.New("unsupported module")

const (
	secCustom   = 0
	secType     = 1
	secImport   = 2
	secFunction = 3
	secMemory   = 5
	secGlobal   = 6
	secExport   = 7
	secStart    = 8
	secCode     = 10
)

// order is a section's position in the binary (custom sections excluded).
var order = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

type section struct {
	id   byte
	body []byte
}

type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: offset %d: %s", ErrUnsupported, r.off, fmt.Sprintf(format, args...))
	}
}

func (r *reader) byte() byte {
	if r.err != nil || r.off >= len(r.b) {
		r.fail("unexpected end")
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

// leb skips/reads an unsigned or signed LEB128 of at most maxBytes.
func (r *reader) u32() uint32 {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.fail("u32 too long")
	return 0
}

func (r *reader) skipLEB(maxBytes int) {
	for i := 0; i < maxBytes; i++ {
		if r.byte()&0x80 == 0 || r.err != nil {
			return
		}
	}
	r.fail("LEB too long")
}

func (r *reader) skip(n int) {
	if r.err != nil || n < 0 || r.off+n > len(r.b) {
		r.fail("unexpected end")
		return
	}
	r.off += n
}

func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func appendS32(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func parseSections(bin []byte) ([]section, error) {
	if len(bin) < 8 || string(bin[:4]) != "\x00asm" || string(bin[4:8]) != "\x01\x00\x00\x00" {
		return nil, fmt.Errorf("%w: not a WebAssembly 1.0 binary", ErrUnsupported)
	}
	r := &reader{b: bin, off: 8}
	var secs []section
	for r.off < len(bin) && r.err == nil {
		id := r.byte()
		n := int(r.u32())
		start := r.off
		r.skip(n)
		if r.err != nil {
			break
		}
		secs = append(secs, section{id: id, body: bin[start : start+n]})
	}
	return secs, r.err
}

// vecCount reads a section's leading count.
func vecCount(body []byte) (uint32, []byte, error) {
	r := &reader{b: body}
	n := r.u32()
	return n, body[r.off:], r.err
}

// Rewrite returns the instrumented module. The input is not modified.
func Rewrite(bin []byte) ([]byte, error) {
	secs, err := parseSections(bin)
	if err != nil {
		return nil, err
	}
	find := func(id byte) int {
		for i, s := range secs {
			if s.id == id {
				return i
			}
		}
		return -1
	}
	// A start function runs inside instantiation, before the host can reach
	// the stop global: leave such modules to close-on-context-done.
	if find(secStart) >= 0 {
		return nil, fmt.Errorf("%w: start section", ErrUnsupported)
	}
	// Counts of imported functions and globals, and whether memory exists.
	var nImportFuncs, nImportGlobals uint32
	hasMemory := find(secMemory) >= 0
	if i := find(secImport); i >= 0 {
		r := &reader{b: secs[i].body}
		n := r.u32()
		for k := uint32(0); k < n && r.err == nil; k++ {
			r.skip(int(r.u32())) // module
			r.skip(int(r.u32())) // name
			switch kind := r.byte(); kind {
			case 0: // func
				r.u32()
				nImportFuncs++
			case 1: // table
				r.byte()
				if r.byte()&1 != 0 {
					r.u32()
				}
				r.u32()
			case 2: // memory
				if r.byte()&1 != 0 {
					r.u32()
				}
				r.u32()
				hasMemory = true
			case 3: // global
				r.byte()
				r.byte()
				nImportGlobals++
			case 4: // tag
				r.byte()
				r.u32()
			default:
				r.fail("import kind %d", kind)
			}
		}
		if r.err != nil {
			return nil, r.err
		}
	}
	if !hasMemory {
		return nil, fmt.Errorf("%w: no memory", ErrUnsupported)
	}
	ensure := func(id byte) int {
		if i := find(id); i >= 0 {
			return i
		}
		pos := len(secs)
		for i, s := range secs {
			if s.id != secCustom && order[s.id] > order[id] {
				pos = i
				break
			}
		}
		secs = append(secs[:pos], append([]section{{id: id, body: []byte{0}}}, secs[pos:]...)...)
		return pos
	}
	// appendEntry adds one entry to a vector section and returns the
	// index the entry got.
	appendEntry := func(id byte, entry []byte) (uint32, error) {
		i := ensure(id)
		n, rest, err := vecCount(secs[i].body)
		if err != nil {
			return 0, err
		}
		body := appendU32(nil, n+1)
		body = append(body, rest...)
		secs[i].body = append(body, entry...)
		return n, nil
	}

	typeIdx, err := appendEntry(secType, []byte{0x60, 0, 0}) // () -> ()
	if err != nil {
		return nil, err
	}
	var g []byte
	g = append(g, 0x7f, 1, 0x41)
	g = appendS32(g, Fuel)
	g = append(g, 0x0b)
	fuelIdx, err := appendEntry(secGlobal, g)
	if err != nil {
		return nil, err
	}
	fuelIdx += nImportGlobals
	stopIdx := fuelIdx + 1
	if _, err := appendEntry(secGlobal, []byte{0x7f, 1, 0x41, 0, 0x0b}); err != nil {
		return nil, err
	}
	exp := appendU32(nil, uint32(len(StopExport)))
	exp = append(exp, StopExport...)
	exp = append(exp, 3)
	exp = appendU32(exp, stopIdx)
	if _, err := appendEntry(secExport, exp); err != nil {
		return nil, err
	}
	nDefined, err := appendEntry(secFunction, appendU32(nil, typeIdx))
	if err != nil {
		return nil, err
	}
	checkIdx := nImportFuncs + nDefined

	// The inline check and the check function.
	var inline []byte
	inline = append(inline, 0x23)
	inline = appendU32(inline, fuelIdx)
	inline = append(inline, 0x45, 0x04, 0x40, 0x10)
	inline = appendU32(inline, checkIdx)
	inline = append(inline, 0x0b, 0x23)
	inline = appendU32(inline, fuelIdx)
	inline = append(inline, 0x41, 0x01, 0x6b, 0x24)
	inline = appendU32(inline, fuelIdx)

	var check []byte
	check = append(check, 0x00, 0x41) // no locals; i32.const Fuel
	check = appendS32(check, Fuel)
	check = append(check, 0x24)
	check = appendU32(check, fuelIdx)
	check = append(check, 0x41, 0x00, 0x40, 0x00, 0x1a, 0x23) // memory.grow(0); drop
	check = appendU32(check, stopIdx)
	check = append(check, 0x04, 0x40, 0x00, 0x0b, 0x0b) // if stop { unreachable }

	ci := ensure(secCode)
	r := &reader{b: secs[ci].body}
	n := r.u32()
	if n != nDefined {
		return nil, fmt.Errorf("%w: %d function bodies for %d functions", ErrUnsupported, n, nDefined)
	}
	code := appendU32(nil, n+1)
	var fn []byte
	for k := uint32(0); k < n; k++ {
		size := int(r.u32())
		start := r.off
		r.skip(size)
		if r.err != nil {
			return nil, r.err
		}
		fn, err = instrumentBody(fn[:0], r.b[start:start+size], inline)
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", nImportFuncs+k, err)
		}
		code = appendU32(code, uint32(len(fn)))
		code = append(code, fn...)
	}
	code = appendU32(code, uint32(len(check)))
	code = append(code, check...)
	secs[ci].body = code

	out := append([]byte(nil), bin[:8]...)
	for _, s := range secs {
		out = append(out, s.id)
		out = appendU32(out, uint32(len(s.body)))
		out = append(out, s.body...)
	}
	return out, nil
}

// instrumentBody copies one function body, inserting inline after every
// loop header and, if the function calls anything, at its entry.
func instrumentBody(dst, body, inline []byte) ([]byte, error) {
	r := &reader{b: body}
	nLocals := r.u32()
	for i := uint32(0); i < nLocals && r.err == nil; i++ {
		r.u32()
		r.byte()
	}
	if r.err != nil {
		return nil, r.err
	}
	dst = append(dst, body[:r.off]...)
	entry := len(dst)
	calls := false
	last := r.off
	for r.off < len(body) && r.err == nil {
		op := r.byte()
		switch {
		case op == 0x03: // loop
			blockType(r)
			dst = append(dst, body[last:r.off]...)
			dst = append(dst, inline...)
			last = r.off
			continue
		case op == 0x10 || op == 0x12 || op == 0x14 || op == 0x15: // call, return_call, call_ref, return_call_ref
			calls = true
			r.u32()
		case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
			calls = true
			r.u32()
			r.u32()
		default:
			immediates(r, op)
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	dst = append(dst, body[last:]...)
	if calls {
		dst = append(dst[:entry], append(append([]byte(nil), inline...), dst[entry:]...)...)
	}
	return dst, nil
}

func blockType(r *reader) {
	if r.off >= len(r.b) {
		r.fail("unexpected end")
		return
	}
	switch c := r.b[r.off]; {
	case c == 0x40 || (c >= 0x7b && c <= 0x7f) || c == 0x70 || c == 0x6f:
		r.off++
	default:
		r.skipLEB(5) // s33 type index
	}
}

func memarg(r *reader) {
	align := r.u32()
	if align&0x40 != 0 {
		r.u32() // memory index (multi-memory)
	}
	r.skipLEB(10) // offset
}

// immediates skips the immediates of op (all but loop and calls).
func immediates(r *reader, op byte) {
	switch {
	case op == 0x00 || op == 0x01 || op == 0x05 || op == 0x0b || op == 0x0f ||
		op == 0x0a || op == 0x19 || op == 0x1a || op == 0x1b || op == 0xd1 || op == 0xd3 || op == 0xd4:
	case op == 0x02 || op == 0x04 || op == 0x06: // block, if, try
		blockType(r)
	case op == 0x07 || op == 0x08 || op == 0x09 || op == 0x18 || op == 0x0c || op == 0x0d ||
		op == 0xd5 || op == 0xd6 || op == 0xd2 || (op >= 0x20 && op <= 0x26):
		r.u32()
	case op == 0x0e: // br_table
		n := r.u32()
		for i := uint32(0); i <= n && r.err == nil; i++ {
			r.u32()
		}
	case op == 0x1c: // select t*
		n := r.u32()
		r.skip(int(n))
	case op == 0x1f: // try_table
		blockType(r)
		n := r.u32()
		for i := uint32(0); i < n && r.err == nil; i++ {
			switch kind := r.byte(); kind {
			case 0, 1:
				r.u32()
				r.u32()
			case 2, 3:
				r.u32()
			default:
				r.fail("catch kind %d", kind)
			}
		}
	case op >= 0x28 && op <= 0x3e:
		memarg(r)
	case op == 0x3f || op == 0x40:
		r.u32()
	case op == 0x41:
		r.skipLEB(5)
	case op == 0x42:
		r.skipLEB(10)
	case op == 0x43:
		r.skip(4)
	case op == 0x44:
		r.skip(8)
	case op >= 0x45 && op <= 0xc4:
	case op == 0xd0: // ref.null heaptype
		blockType(r)
	case op == 0xfc:
		switch sub := r.u32(); {
		case sub <= 7:
		case sub == 8: // memory.init
			r.u32()
			r.u32()
		case sub == 9 || sub == 13 || sub == 11 || (sub >= 15 && sub <= 17):
			r.u32()
		case sub == 10 || sub == 12 || sub == 14:
			r.u32()
			r.u32()
		default:
			r.fail("opcode 0xfc %d", sub)
		}
	case op == 0xfd:
		switch sub := r.u32(); {
		case sub <= 11 || sub == 92 || sub == 93:
			memarg(r)
		case sub == 12 || sub == 13:
			r.skip(16)
		case sub >= 21 && sub <= 34:
			r.skip(1)
		case sub >= 84 && sub <= 91:
			memarg(r)
			r.skip(1)
		}
	case op == 0xfe:
		if sub := r.u32(); sub == 3 {
			r.skip(1)
		} else {
			memarg(r)
		}
	default:
		r.fail("opcode %#x", op)
	}
}
