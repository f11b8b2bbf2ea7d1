package lua

import (
	"context"
	"fmt"
	"runtime/metrics"
	"strings"
	"sync"
	"time"
	"unsafe"

	glua "github.com/yuin/gopher-lua"
)

// Limits.
//
// gopher-lua has no allocator hook, so memory is bounded by a combination:
//
//  1. Every library function that can build a large string (string.rep, string.format,
//     string.gsub, table.concat, narayana.http_*) and the `..` operator (rewritten at
//     compile time into a guarded call, see compile.go) refuses a result larger than
//     MemoryLimit before allocating it, and counts the bytes it produced.
//  2. gopher-lua checks the call's context before every VM instruction; our context's
//     Done method is that hook. It counts instructions and, every so many instructions or
//     after MemoryLimit/4 bytes of new strings, estimates what the state holds (tables,
//     strings, closures reachable from globals, the registry, the call stack and the
//     registered handlers). Over MemoryLimit the call stops with ErrMemory.
//  3. RegistryMaxSize and CallStackSize bound the VM's own stacks.
//  4. Optionally (HeapLimit) the process heap is sampled with runtime/metrics; above the
//     limit the running Lua calls stop with ErrMemory. This backstop cannot tell which
//     call allocated, so it may stop an innocent call sharing the process with a bomb.
//
// Known gaps: the estimate is approximate (Go runtime overheads are guessed), temporary
// values in VM registers that are not named locals are not counted, and memory allocated
// inside one Go library call that runs no Lua instruction is only bounded by (1).

const (
	walkMinInstructions = 100_000
	heapCheckEvery      = 1 << 14
)

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// guard is the context given to the VM with L.SetContext. Only the VM's goroutine calls
// its Done method (once per instruction): everything else gets the plain context.
type guard struct {
	context.Context
	s        *state
	n        uint64
	nextWalk uint64
	nextHeap uint64
	err      error // limit hit; sticky so pcall cannot swallow it
}

func (g *guard) Done() <-chan struct{} {
	g.n++
	if g.err != nil {
		return closedChan
	}
	if g.n >= g.nextWalk || g.s.walkDue {
		g.walk()
	}
	if g.n >= g.nextHeap && g.s.rt.opts.HeapLimit > 0 {
		g.nextHeap = g.n + heapCheckEvery
		if h := heapBytes(); h > g.s.rt.opts.HeapLimit {
			g.err = fmt.Errorf("memory limit exceeded: process heap %d MiB is over the %d MiB limit",
				h>>20, g.s.rt.opts.HeapLimit>>20)
		}
	}
	if g.err != nil {
		return closedChan
	}
	return g.Context.Done()
}

func (g *guard) Err() error {
	if g.err != nil {
		return g.err
	}
	if err := g.Context.Err(); err != nil {
		if err == context.DeadlineExceeded && g.s.deadlineOwn {
			return fmt.Errorf("time limit of %s exceeded", g.s.rt.opts.Timeout)
		}
		return err
	}
	return nil
}

func (g *guard) walk() {
	s := g.s
	s.walkDue = false
	s.produced = 0
	limit := s.rt.opts.MemoryLimit
	held, entries := s.estimate(limit)
	next := uint64(walkMinInstructions)
	if uint64(entries) > next {
		next = uint64(entries)
	}
	g.nextWalk = g.n + next
	if held > limit {
		g.err = fmt.Errorf("memory limit exceeded: the script holds about %.1f MiB (limit %.1f MiB)",
			float64(held)/(1<<20), float64(limit)/(1<<20))
	}
}

var heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
var heapMu sync.Mutex

func heapBytes() uint64 {
	heapMu.Lock()
	defer heapMu.Unlock()
	metrics.Read(heapSample)
	if heapSample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return heapSample[0].Value.Uint64()
}

// charge records n bytes of new string data produced by the running call, and refuses
// a single result larger than the memory limit.
func (s *state) charge(L *glua.LState, n int64, what string) {
	limit := s.rt.opts.MemoryLimit
	if n > limit || n < 0 {
		s.raiseLimit(L, fmt.Sprintf("memory limit exceeded: %s would build a string of %d bytes (limit %d bytes)", what, n, limit))
	}
	s.produced += n
	if s.produced > limit/4 {
		s.walkDue = true
	}
}

// raiseLimit stops the call with a memory error that pcall cannot swallow.
func (s *state) raiseLimit(L *glua.LState, msg string) {
	if s.g != nil && s.g.err == nil {
		s.g.err = fmt.Errorf("%s", msg)
	}
	L.RaiseError("%s", msg)
}

// estimate guesses the bytes held by the state, giving up once over limit.
// It returns the estimate and the number of values visited.
func (s *state) estimate(limit int64) (int64, int) {
	w := walker{seen: map[any]struct{}{}, strs: map[*byte]struct{}{}, limit: limit}
	L := s.L
	w.value(L.G.Global)
	w.value(L.G.Registry)
	for _, fn := range s.funcs() {
		w.value(fn)
	}
	for level := 0; w.bytes <= limit; level++ {
		dbg, ok := L.GetStack(level)
		if !ok {
			break
		}
		if fn, err := L.GetInfo("f", dbg, glua.LNil); err == nil {
			w.value(fn)
		}
		for i := 1; i < 256; i++ {
			name, v := L.GetLocal(dbg, i)
			if name == "" {
				break
			}
			w.value(v)
		}
	}
	return w.bytes, w.n
}

type walker struct {
	seen  map[any]struct{}
	strs  map[*byte]struct{}
	bytes int64
	n     int
	limit int64
}

func (w *walker) value(v glua.LValue) {
	if w.bytes > w.limit {
		return
	}
	w.n++
	switch v := v.(type) {
	case glua.LString:
		if len(v) >= 64 {
			p := unsafe.StringData(string(v))
			if _, ok := w.strs[p]; ok {
				return
			}
			w.strs[p] = struct{}{}
		}
		w.bytes += int64(len(v)) + 16
	case glua.LNumber:
		w.bytes += 8
	case *glua.LTable:
		if _, ok := w.seen[v]; ok {
			return
		}
		w.seen[v] = struct{}{}
		w.bytes += 96
		if v.Metatable != nil {
			w.value(v.Metatable)
		}
		v.ForEach(func(k, val glua.LValue) {
			if w.bytes > w.limit {
				return
			}
			w.bytes += 40
			w.value(k)
			w.value(val)
		})
	case *glua.LFunction:
		if _, ok := w.seen[v]; ok {
			return
		}
		w.seen[v] = struct{}{}
		w.bytes += 64
		if v.IsG {
			return
		}
		for _, uv := range v.Upvalues {
			w.bytes += 32
			w.value(uv.Value())
		}
	case *glua.LUserData:
		if _, ok := w.seen[v]; ok {
			return
		}
		w.seen[v] = struct{}{}
		w.bytes += 64
		if v.Metatable != nil {
			w.value(v.Metatable)
		}
	}
}

// ---- guarded string builders ----

// luaConcat implements `..` for the compiled scripts (see compile.go): the same result as
// the VM's concatenation, with the size checked before building it.
func (s *state) luaConcat(L *glua.LState) int {
	n := L.GetTop()
	if n == 0 {
		L.Push(glua.LString(""))
		return 1
	}
	total := 0
	plain := true
	for i := 1; i <= n; i++ {
		switch v := L.Get(i).(type) {
		case glua.LString:
			total += len(v)
		case glua.LNumber:
			total += 24
		default:
			plain = false
		}
	}
	if plain {
		s.charge(L, int64(total), "concatenation")
		var b strings.Builder
		b.Grow(total)
		for i := 1; i <= n; i++ {
			b.WriteString(glua.LVAsString(L.Get(i)))
		}
		L.Push(glua.LString(b.String()))
		return 1
	}
	// Right to left, pairwise, with __concat metamethods, as Lua does.
	acc := L.Get(n)
	for i := n - 1; i >= 1; i-- {
		acc = s.concat2(L, L.Get(i), acc)
	}
	L.Push(acc)
	return 1
}

func (s *state) concat2(L *glua.LState, a, b glua.LValue) glua.LValue {
	if isStrNum(a) && isStrNum(b) {
		x, y := glua.LVAsString(a), glua.LVAsString(b)
		s.charge(L, int64(len(x)+len(y)), "concatenation")
		return glua.LString(x + y)
	}
	mm := L.GetMetaField(a, "__concat")
	if mm == glua.LNil {
		mm = L.GetMetaField(b, "__concat")
	}
	if mm == glua.LNil {
		bad := a
		if isStrNum(a) {
			bad = b
		}
		L.RaiseError("attempt to concatenate a %s value", bad.Type().String())
	}
	L.Push(mm)
	L.Push(a)
	L.Push(b)
	L.Call(2, 1)
	return L.Get(-1)
}

func isStrNum(v glua.LValue) bool {
	switch v.(type) {
	case glua.LString, glua.LNumber:
		return true
	}
	return false
}

// wrapStringLib replaces the string functions that can build large results.
func (s *state) wrapStringLib(L *glua.LState, strtab *glua.LTable) {
	origFormat := strtab.RawGetString("format").(*glua.LFunction)
	origGsub := strtab.RawGetString("gsub").(*glua.LFunction)

	strtab.RawSetString("rep", L.NewFunction(func(L *glua.LState) int {
		str := L.CheckString(1)
		n := L.CheckInt64(2)
		if n <= 0 || str == "" {
			L.Push(glua.LString(""))
			return 1
		}
		if n > s.rt.opts.MemoryLimit || int64(len(str)) > s.rt.opts.MemoryLimit/n {
			s.charge(L, s.rt.opts.MemoryLimit+1, fmt.Sprintf("string.rep(%d bytes, %d)", len(str), n))
		}
		s.charge(L, int64(len(str))*n, "string.rep")
		L.Push(glua.LString(strings.Repeat(str, int(n))))
		return 1
	}))

	strtab.RawSetString("format", L.NewFunction(func(L *glua.LState) int {
		f := L.CheckString(1)
		if err := checkFormat(f); err != "" {
			L.ArgError(1, err)
		}
		var est int64 = int64(len(f))
		for i := 2; i <= L.GetTop(); i++ {
			est += int64(len(glua.LVAsString(L.Get(i)))) + 128
		}
		s.charge(L, est, "string.format")
		return s.callOrig(L, origFormat)
	}))

	strtab.RawSetString("gsub", L.NewFunction(func(L *glua.LState) int {
		str := L.CheckString(1)
		L.CheckAny(3)
		repl := L.Get(3)
		limit := s.rt.opts.MemoryLimit
		var produced int64 = int64(len(str))
		count := func(v glua.LValue) {
			if sv, ok := v.(glua.LString); ok {
				produced += int64(len(sv))
				if produced > limit {
					s.charge(L, produced, "string.gsub")
				}
			}
		}
		switch r := repl.(type) {
		case glua.LString, glua.LNumber:
			rs := glua.LVAsString(r)
			if strings.Contains(rs, "%") {
				// %0..%9 expand to captures: bound the worst case.
				matches := int64(len(str)) + 1
				if L.GetTop() >= 4 {
					if m := L.CheckInt64(4); m >= 0 && m < matches {
						matches = m
					}
				}
				per := int64(len(rs)) + int64(strings.Count(rs, "%"))*int64(len(str))
				if per > 0 && matches > (limit-int64(len(str)))/per {
					s.charge(L, limit+1, "string.gsub (worst case)")
				}
			} else {
				L.Replace(3, L.NewFunction(func(L *glua.LState) int {
					count(r)
					L.Push(glua.LString(rs))
					return 1
				}))
			}
		case *glua.LTable:
			L.Replace(3, L.NewFunction(func(L *glua.LState) int {
				v := L.GetTable(r, L.Get(1))
				count(v)
				L.Push(v)
				return 1
			}))
		case *glua.LFunction:
			L.Replace(3, L.NewFunction(func(L *glua.LState) int {
				top := L.GetTop()
				L.Push(r)
				for i := 1; i <= top; i++ {
					L.Push(L.Get(i))
				}
				L.Call(top, 1)
				v := L.Get(-1)
				count(v)
				return 1
			}))
		}
		nret := s.callOrig(L, origGsub)
		if res, ok := L.Get(-nret).(glua.LString); ok {
			s.charge(L, int64(len(res)), "string.gsub")
		}
		return nret
	}))

	for _, name := range []string{"upper", "lower", "reverse"} {
		orig := strtab.RawGetString(name).(*glua.LFunction)
		strtab.RawSetString(name, L.NewFunction(func(L *glua.LState) int {
			s.charge(L, int64(len(L.CheckString(1))), "string."+name)
			return s.callOrig(L, orig)
		}))
	}
}

// wrapTableLib guards table.concat.
func (s *state) wrapTableLib(L *glua.LState, tab *glua.LTable) {
	orig := tab.RawGetString("concat").(*glua.LFunction)
	tab.RawSetString("concat", L.NewFunction(func(L *glua.LState) int {
		t := L.CheckTable(1)
		sep := len(L.OptString(2, ""))
		i := L.OptInt64(3, 1)
		j := L.OptInt64(4, int64(t.Len()))
		var total int64
		limit := s.rt.opts.MemoryLimit
		for k := i; k <= j; k++ {
			total += int64(len(glua.LVAsString(t.RawGetInt(int(k))))) + int64(sep)
			if total > limit {
				break
			}
		}
		s.charge(L, total, "table.concat")
		return s.callOrig(L, orig)
	}))
}

// callOrig calls a library function with the current arguments.
func (s *state) callOrig(L *glua.LState, fn *glua.LFunction) int {
	top := L.GetTop()
	L.Push(fn)
	for i := 1; i <= top; i++ {
		L.Push(L.Get(i))
	}
	L.Call(top, glua.MultRet)
	return L.GetTop() - top
}

// checkFormat refuses widths or precisions of more than two digits, as Lua 5.1 does;
// Go's fmt would happily pad to a gigabyte.
func checkFormat(f string) string {
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			continue
		}
		i++
		if i < len(f) && f[i] == '%' {
			continue
		}
		for i < len(f) && strings.IndexByte("-+ #0", f[i]) >= 0 {
			i++
		}
		d := 0
		for i < len(f) && f[i] >= '0' && f[i] <= '9' {
			i, d = i+1, d+1
		}
		if i < len(f) && f[i] == '.' {
			i++
			p := 0
			for i < len(f) && f[i] >= '0' && f[i] <= '9' {
				i, p = i+1, p+1
			}
			if p > 2 {
				d = 3
			}
		}
		if d > 2 {
			return "invalid format (width or precision too long)"
		}
	}
	return ""
}

// deadline helper shared by calls and loading.
func withLimit(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc, bool) {
	own := true
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		own = false
	}
	c, cancel := context.WithTimeout(ctx, d)
	return c, cancel, own
}
