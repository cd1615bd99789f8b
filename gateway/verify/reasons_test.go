package verify

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

// Every refusal the verifier gives carries a reason declared in
// authsvc.v1.ErrorReason, spelled as authsvc spells it on the wire.
func TestRefusalsCarryDeclaredReasons(t *testing.T) {
	refusals := map[string]*Error{
		"ErrTokenMissing": ErrTokenMissing, "ErrTokenInvalid": ErrTokenInvalid,
		"ErrTokenNotYetValid": ErrTokenNotYetValid, "ErrTokenExpired": ErrTokenExpired,
		"ErrTokenRevoked": ErrTokenRevoked, "ErrMalformedAuthorization": ErrMalformedAuthorization,
		"InsufficientScope":              InsufficientScope("admin"),
		"InsufficientUserAuthentication": InsufficientUserAuthentication([]string{"otp"}, 300),
	}
	want := map[string]string{
		"ErrTokenMissing": "TOKEN_MISSING", "ErrTokenInvalid": "TOKEN_INVALID",
		"ErrTokenNotYetValid": "TOKEN_INVALID", "ErrTokenExpired": "TOKEN_EXPIRED",
		"ErrTokenRevoked": "TOKEN_REVOKED", "ErrMalformedAuthorization": "TOKEN_INVALID",
		"InsufficientScope":              "INSUFFICIENT_SCOPE",
		"InsufficientUserAuthentication": "INSUFFICIENT_USER_AUTHENTICATION",
	}
	for name, e := range refusals {
		if !IsReason(e.Reason) {
			t.Errorf("%s: reason %q is not an authsvc.v1.ErrorReason value", name, e.Reason)
		}
		if e.Reason != want[name] {
			t.Errorf("%s: reason %q, want the wire string %q", name, e.Reason, want[name])
		}
	}
	if ErrUnavailable.Reason != "" || ErrUnavailable.Code != codes.Unavailable {
		t.Errorf("ErrUnavailable carries no ErrorInfo, got reason %q", ErrUnavailable.Reason)
	}
}

// Reason is the value's name; IsReason accepts exactly the declared names.
func TestReasonIsTheEnumValueName(t *testing.T) {
	if got := Reason(authsvcv1.ErrorReason_INVALID_CREDENTIALS); got != "INVALID_CREDENTIALS" {
		t.Fatalf("Reason(INVALID_CREDENTIALS) = %q", got)
	}
	for _, s := range []string{"", "ERROR_REASON_UNSPECIFIED", "invalid_credentials", "NO_SUCH_REASON"} {
		if IsReason(s) {
			t.Errorf("IsReason(%q) = true, want false", s)
		}
	}
	for n, name := range authsvcv1.ErrorReason_name {
		if n != 0 && !IsReason(name) {
			t.Errorf("IsReason(%q) = false for a declared value", name)
		}
	}
}

// No ErrorInfo the gateway builds names a reason that authsvc.v1.ErrorReason
// lacks: every errdetails.ErrorInfo{Reason: "..."} literal in the gateway's
// sources (generated code aside) is a declared value.
func TestEveryErrorInfoLiteralInTheGatewayIsDeclared(t *testing.T) {
	root := filepath.Join("..")
	fset := token.NewFileSet()
	seen := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "gen" {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		file, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok || !isErrorInfo(lit.Type) {
				return true
			}
			for _, elt := range lit.Elts {
				kv, ok := elt.(*ast.KeyValueExpr)
				if !ok || !isIdent(kv.Key, "Reason") {
					continue
				}
				seen++
				if s, ok := kv.Value.(*ast.BasicLit); ok && s.Kind == token.STRING {
					reason, _ := strconv.Unquote(s.Value)
					if !IsReason(reason) {
						t.Errorf("%s: ErrorInfo reason %q is not declared in authsvc.v1.ErrorReason",
							fset.Position(s.Pos()), reason)
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen == 0 {
		t.Fatal("found no ErrorInfo literal at all: the walk is broken")
	}
}

func isErrorInfo(e ast.Expr) bool {
	sel, ok := e.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "ErrorInfo" && isIdent(sel.X, "errdetails")
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}
