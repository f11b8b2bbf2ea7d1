package lua

import (
	"strings"

	glua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/ast"
	"github.com/yuin/gopher-lua/parse"
)

// concatName is the local that holds the guarded concatenation. It is not a valid Lua
// identifier, so scripts can neither name, shadow nor reassign it.
const concatName = "(concat)"

// compileChunk parses src and compiles it so that every `a .. b .. c` becomes a call of
// the guarded concatenation (gopher-lua has no allocation hook; the concat opcode is the
// one way a script could build a huge string without calling a library function).
//
// The compiled chunk, when run, returns a function(concat, ...) whose body is the script;
// the runtime calls it with the guard and the usual chunk arguments.
func compileChunk(src, name string) (*glua.FunctionProto, error) {
	stmts, err := parse.Parse(strings.NewReader(src), name)
	if err != nil {
		return nil, err
	}
	rw := concatRewriter{}
	rw.stmts(stmts)
	fn := &ast.FunctionExpr{
		ParList: &ast.ParList{HasVargs: true, Names: []string{concatName}},
		Stmts:   stmts,
	}
	fn.SetLine(1)
	fn.SetLastLine(1)
	ret := &ast.ReturnStmt{Exprs: []ast.Expr{fn}}
	ret.SetLine(1)
	ret.SetLastLine(1)
	return glua.Compile([]ast.Stmt{ret}, name)
}

type concatRewriter struct{}

func (rw concatRewriter) stmts(list []ast.Stmt) {
	for _, s := range list {
		rw.stmt(s)
	}
}

func (rw concatRewriter) exprs(list []ast.Expr) {
	for i := range list {
		list[i] = rw.expr(list[i])
	}
}

func (rw concatRewriter) stmt(s ast.Stmt) {
	switch s := s.(type) {
	case *ast.AssignStmt:
		rw.exprs(s.Lhs)
		rw.exprs(s.Rhs)
	case *ast.LocalAssignStmt:
		rw.exprs(s.Exprs)
	case *ast.FuncCallStmt:
		s.Expr = rw.expr(s.Expr)
	case *ast.DoBlockStmt:
		rw.stmts(s.Stmts)
	case *ast.WhileStmt:
		s.Condition = rw.expr(s.Condition)
		rw.stmts(s.Stmts)
	case *ast.RepeatStmt:
		s.Condition = rw.expr(s.Condition)
		rw.stmts(s.Stmts)
	case *ast.IfStmt:
		s.Condition = rw.expr(s.Condition)
		rw.stmts(s.Then)
		rw.stmts(s.Else)
	case *ast.NumberForStmt:
		s.Init = rw.expr(s.Init)
		s.Limit = rw.expr(s.Limit)
		if s.Step != nil {
			s.Step = rw.expr(s.Step)
		}
		rw.stmts(s.Stmts)
	case *ast.GenericForStmt:
		rw.exprs(s.Exprs)
		rw.stmts(s.Stmts)
	case *ast.FuncDefStmt:
		if s.Name != nil {
			if s.Name.Func != nil {
				s.Name.Func = rw.expr(s.Name.Func)
			}
			if s.Name.Receiver != nil {
				s.Name.Receiver = rw.expr(s.Name.Receiver)
			}
		}
		rw.stmts(s.Func.Stmts)
	case *ast.ReturnStmt:
		rw.exprs(s.Exprs)
	}
}

func (rw concatRewriter) expr(e ast.Expr) ast.Expr {
	switch e := e.(type) {
	case nil:
		return nil
	case *ast.StringConcatOpExpr:
		var operands []ast.Expr
		rw.flatten(e, &operands)
		for i, op := range operands {
			op = rw.expr(op)
			// An operand of `..` is truncated to one value; as a call argument the last
			// one would expand, so adjust it as if it were parenthesised.
			switch o := op.(type) {
			case *ast.FuncCallExpr:
				o.AdjustRet = true
			case *ast.Comma3Expr:
				o.AdjustRet = true
			}
			operands[i] = op
		}
		fn := &ast.IdentExpr{Value: concatName}
		fn.SetLine(e.Line())
		fn.SetLastLine(e.LastLine())
		call := &ast.FuncCallExpr{Func: fn, Args: operands}
		call.SetLine(e.Line())
		call.SetLastLine(e.LastLine())
		return call
	case *ast.AttrGetExpr:
		e.Object = rw.expr(e.Object)
		e.Key = rw.expr(e.Key)
	case *ast.TableExpr:
		for _, f := range e.Fields {
			if f.Key != nil {
				f.Key = rw.expr(f.Key)
			}
			f.Value = rw.expr(f.Value)
		}
	case *ast.FuncCallExpr:
		if e.Func != nil {
			e.Func = rw.expr(e.Func)
		}
		if e.Receiver != nil {
			e.Receiver = rw.expr(e.Receiver)
		}
		rw.exprs(e.Args)
	case *ast.LogicalOpExpr:
		e.Lhs = rw.expr(e.Lhs)
		e.Rhs = rw.expr(e.Rhs)
	case *ast.RelationalOpExpr:
		e.Lhs = rw.expr(e.Lhs)
		e.Rhs = rw.expr(e.Rhs)
	case *ast.ArithmeticOpExpr:
		e.Lhs = rw.expr(e.Lhs)
		e.Rhs = rw.expr(e.Rhs)
	case *ast.UnaryMinusOpExpr:
		e.Expr = rw.expr(e.Expr)
	case *ast.UnaryNotOpExpr:
		e.Expr = rw.expr(e.Expr)
	case *ast.UnaryLenOpExpr:
		e.Expr = rw.expr(e.Expr)
	case *ast.FunctionExpr:
		rw.stmts(e.Stmts)
	}
	return e
}

// flatten collects the operands of a right-nested chain a .. (b .. c).
func (rw concatRewriter) flatten(e ast.Expr, out *[]ast.Expr) {
	if c, ok := e.(*ast.StringConcatOpExpr); ok {
		rw.flatten(c.Lhs, out)
		rw.flatten(c.Rhs, out)
		return
	}
	*out = append(*out, e)
}
