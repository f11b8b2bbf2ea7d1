package lua

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"time"

	glua "github.com/yuin/gopher-lua"
)

const maxConvertDepth = 64

// toLua converts a Go value to a Lua value. With ro, tables are read-only proxies:
// reading, pairs, ipairs and # work; assigning a field raises an error.
//
// Handled directly: nil, bool, string, []byte, all integer and float kinds, time.Time
// (RFC 3339 text), map[string]any, []any, map[string]string, []string. Anything else
// (structs, other maps and slices) goes through encoding/json first, so struct fields
// appear under their json names.
func (s *state) toLua(v any, ro bool, depth int) (glua.LValue, error) {
	if depth > maxConvertDepth {
		return glua.LNil, fmt.Errorf("value nested too deep")
	}
	L := s.L
	switch v := v.(type) {
	case nil:
		return glua.LNil, nil
	case glua.LValue:
		return v, nil
	case bool:
		return glua.LBool(v), nil
	case string:
		return glua.LString(v), nil
	case []byte:
		return glua.LString(v), nil
	case int:
		return glua.LNumber(v), nil
	case int8:
		return glua.LNumber(v), nil
	case int16:
		return glua.LNumber(v), nil
	case int32:
		return glua.LNumber(v), nil
	case int64:
		return glua.LNumber(v), nil
	case uint:
		return glua.LNumber(v), nil
	case uint8:
		return glua.LNumber(v), nil
	case uint16:
		return glua.LNumber(v), nil
	case uint32:
		return glua.LNumber(v), nil
	case uint64:
		return glua.LNumber(v), nil
	case float32:
		return glua.LNumber(v), nil
	case float64:
		return glua.LNumber(v), nil
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return glua.LNil, err
		}
		return glua.LNumber(f), nil
	case time.Time:
		return glua.LString(v.Format(time.RFC3339)), nil
	case map[string]any:
		if v == nil {
			return glua.LNil, nil // e.g. Request.User of a method without a user
		}
		t := L.CreateTable(0, len(v))
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			lv, err := s.toLua(v[k], ro, depth+1)
			if err != nil {
				return glua.LNil, fmt.Errorf("%s: %w", k, err)
			}
			t.RawSetString(k, lv)
		}
		return s.maybeRO(t, ro), nil
	case map[string]string:
		t := L.CreateTable(0, len(v))
		for k, x := range v {
			t.RawSetString(k, glua.LString(x))
		}
		return s.maybeRO(t, ro), nil
	case []any:
		t := L.CreateTable(len(v), 0)
		for i, x := range v {
			lv, err := s.toLua(x, ro, depth+1)
			if err != nil {
				return glua.LNil, fmt.Errorf("[%d]: %w", i+1, err)
			}
			t.RawSetInt(i+1, lv)
		}
		return s.maybeRO(t, ro), nil
	case []string:
		t := L.CreateTable(len(v), 0)
		for i, x := range v {
			t.RawSetInt(i+1, glua.LString(x))
		}
		return s.maybeRO(t, ro), nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return glua.LNil, nil
		}
	case reflect.Func, reflect.Chan, reflect.UnsafePointer, reflect.Complex64, reflect.Complex128:
		return glua.LNil, fmt.Errorf("cannot pass a %T to Lua", v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return glua.LNil, fmt.Errorf("cannot pass a %T to Lua: %w", v, err)
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		return glua.LNil, err
	}
	return s.toLua(generic, ro, depth+1)
}

// maybeRO wraps t in a read-only proxy when ro is set.
func (s *state) maybeRO(t *glua.LTable, ro bool) glua.LValue {
	if !ro {
		return t
	}
	L := s.L
	proxy := L.NewTable()
	mt := L.CreateTable(0, 6)
	mt.RawSetString("__index", t)
	mt.RawSetString("__newindex", s.roNewIndex)
	mt.RawSetString("__len", L.NewFunction(func(L *glua.LState) int {
		L.Push(glua.LNumber(t.Len()))
		return 1
	}))
	iter := L.NewFunction(func(L *glua.LState) int {
		k, v := t.Next(L.Get(2))
		if k == glua.LNil {
			L.Push(glua.LNil)
			return 1
		}
		L.Push(k)
		L.Push(v)
		return 2
	})
	mt.RawSetString("__pairs", L.NewFunction(func(L *glua.LState) int {
		L.Push(iter)
		L.Push(proxy)
		L.Push(glua.LNil)
		return 3
	}))
	// The metatable is protected (getmetatable answers "read-only"), so scripts never
	// reach the backing table.
	mt.RawSetString("__backing", t)
	mt.RawSetString("__metatable", glua.LString("read-only"))
	L.SetMetatable(proxy, mt)
	return proxy
}

// backing returns the table behind a read-only proxy, or t itself.
func backing(t *glua.LTable) *glua.LTable {
	if mt, ok := t.Metatable.(*glua.LTable); ok {
		if b, ok := mt.RawGetString("__backing").(*glua.LTable); ok {
			return b
		}
	}
	return t
}

// fromLua converts a script's value to Go: nil, bool, string, int64 (integral numbers),
// float64, map[string]any and []any. A table whose keys are exactly 1..n becomes a
// []any; an empty table becomes an empty []any; other tables become maps whose number
// keys are written in decimal. Functions, userdata, cycles and NaN/Inf are errors.
func fromLua(v glua.LValue) (any, error) {
	return fromLuaDepth(v, map[*glua.LTable]bool{}, 0)
}

func fromLuaDepth(v glua.LValue, active map[*glua.LTable]bool, depth int) (any, error) {
	if depth > maxConvertDepth {
		return nil, fmt.Errorf("value nested too deep")
	}
	switch v := v.(type) {
	case *glua.LNilType:
		return nil, nil
	case glua.LBool:
		return bool(v), nil
	case glua.LString:
		return string(v), nil
	case glua.LNumber:
		return numberToGo(float64(v))
	case *glua.LTable:
		v = backing(v)
		if active[v] {
			return nil, fmt.Errorf("table contains itself")
		}
		active[v] = true
		defer delete(active, v)
		n := 0
		maxInt := 0
		allInts := true
		v.ForEach(func(k, _ glua.LValue) {
			n++
			if f, ok := k.(glua.LNumber); ok && float64(f) == math.Trunc(float64(f)) && f >= 1 && f <= 1<<31 {
				if int(f) > maxInt {
					maxInt = int(f)
				}
			} else {
				allInts = false
			}
		})
		if allInts && maxInt == n {
			out := make([]any, n)
			for i := 1; i <= n; i++ {
				x, err := fromLuaDepth(v.RawGetInt(i), active, depth+1)
				if err != nil {
					return nil, fmt.Errorf("[%d]: %w", i, err)
				}
				out[i-1] = x
			}
			return out, nil
		}
		out := make(map[string]any, n)
		var ferr error
		v.ForEach(func(k, val glua.LValue) {
			if ferr != nil {
				return
			}
			var key string
			switch k := k.(type) {
			case glua.LString:
				key = string(k)
			case glua.LNumber:
				key = glua.LVAsString(k)
			case glua.LBool:
				key = strconv.FormatBool(bool(k))
			default:
				ferr = fmt.Errorf("table key of type %s cannot be converted", k.Type())
				return
			}
			x, err := fromLuaDepth(val, active, depth+1)
			if err != nil {
				ferr = fmt.Errorf("%s: %w", key, err)
				return
			}
			out[key] = x
		})
		if ferr != nil {
			return nil, ferr
		}
		return out, nil
	}
	return nil, fmt.Errorf("a %s cannot be converted", v.Type())
}

func numberToGo(f float64) (any, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("number %v cannot be converted", f)
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<63 {
		return int64(f), nil
	}
	return f, nil
}
