package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/build"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestFileDependencies checks that the files of this command and of its
// internal packages reference each other in one direction only: a file
// uses what lower files declare and nothing of the files above it. An
// edge a -> b means that a file a uses an identifier (function, method,
// type, variable, constant, field) that file b declares. Test files are
// left out. With -v it logs the who-calls-whom table of every package,
// files in order from the top (commands) to the bottom (the base).
func TestFileDependencies(t *testing.T) {
	dirs := []string{"."}
	filepath.WalkDir("internal", func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			if gos, _ := filepath.Glob(filepath.Join(path, "*.go")); len(gos) > 0 {
				dirs = append(dirs, path)
			}
		}
		return nil
	})
	imp := exportImporter(t, dirs)
	for _, dir := range dirs {
		g, ok := fileGraph(t, imp, dir)
		if !ok {
			continue // no Go files
		}
		order, cycles := g.layers()
		for _, c := range cycles {
			t.Errorf("%s: files reference each other in a cycle: %s", dir, strings.Join(c, ", "))
		}
		t.Logf("package %s: %d files, %d edges; who uses whom, top to bottom:\n%s", dir, len(g.files), g.edges(), g.table(order))
	}
}

// graph maps a file to the files it uses and how often.
type graph struct {
	files []string
	uses  map[string]map[string]int
}

func (g *graph) edges() int {
	n := 0
	for _, to := range g.uses {
		n += len(to)
	}
	return n
}

// fileGraph parses and type-checks the package in dir, without its test
// files and other platforms' files, and returns the graph of its files.
func fileGraph(t *testing.T, imp types.Importer, dir string) (*graph, bool) {
	t.Helper()
	fset := token.NewFileSet()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	g := &graph{uses: map[string]map[string]int{}}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		// Only this platform's files: a function that has a file per
		// platform is declared in each.
		if ok, err := build.Default.MatchFile(dir, filepath.Base(name)); err != nil || !ok {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		g.files = append(g.files, filepath.Base(name))
	}
	if len(files) == 0 {
		return nil, false
	}
	info := &types.Info{Uses: map[*ast.Ident]types.Object{}, Selections: map[*ast.SelectorExpr]*types.Selection{}}
	conf := types.Config{Importer: imp}
	pkg, err := conf.Check(dir, fset, files, info)
	if err != nil {
		t.Fatalf("type-checking %s: %v", dir, err)
	}
	declaredIn := func(obj types.Object) string {
		if obj == nil || obj.Pkg() != pkg || !obj.Pos().IsValid() {
			return ""
		}
		return filepath.Base(fset.Position(obj.Pos()).Filename)
	}
	add := func(at token.Pos, obj types.Object) {
		from, to := filepath.Base(fset.Position(at).Filename), declaredIn(obj)
		if to == "" || to == from {
			return
		}
		if g.uses[from] == nil {
			g.uses[from] = map[string]int{}
		}
		g.uses[from][to]++
	}
	for id, obj := range info.Uses {
		add(id.Pos(), obj)
	}
	// A promoted field or method reaches through embedded fields that the
	// selector does not name: count those too.
	for sel, s := range info.Selections {
		typ := s.Recv()
		for _, i := range s.Index()[:len(s.Index())-1] {
			st, ok := deref(typ).Underlying().(*types.Struct)
			if !ok {
				break
			}
			f := st.Field(i)
			add(sel.Pos(), f)
			typ = f.Type()
		}
	}
	return g, true
}

func deref(t types.Type) types.Type {
	if p, ok := t.(*types.Pointer); ok {
		return p.Elem()
	}
	return t
}

// layers orders the files so that every file comes before the files it
// uses, and returns the cycles (strongly connected components of more
// than one file) that make that impossible.
func (g *graph) layers() (order []string, cycles [][]string) {
	// Tarjan's algorithm emits components in reverse topological order:
	// a component after every component it reaches.
	index := map[string]int{}
	low := map[string]int{}
	on := map[string]bool{}
	var stack []string
	var visit func(v string)
	visit = func(v string) {
		index[v], low[v] = len(index), len(index)
		stack = append(stack, v)
		on[v] = true
		for _, w := range slices.Sorted(maps.Keys(g.uses[v])) {
			if _, seen := index[w]; !seen {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if on[w] {
				low[v] = min(low[v], index[w])
			}
		}
		if low[v] != index[v] {
			return
		}
		var comp []string
		for {
			w := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			on[w] = false
			comp = append(comp, w)
			if w == v {
				break
			}
		}
		slices.Sort(comp)
		if len(comp) > 1 {
			cycles = append(cycles, comp)
		}
		order = append(order, comp...)
	}
	for _, f := range g.files {
		if _, seen := index[f]; !seen {
			visit(f)
		}
	}
	slices.Reverse(order)
	return order, cycles
}

// table prints one line per file: the files it uses, each with the
// number of references.
func (g *graph) table(order []string) string {
	var b strings.Builder
	w := 0
	for _, f := range order {
		w = max(w, len(f))
	}
	for _, f := range order {
		var to []string
		for _, u := range slices.Sorted(maps.Keys(g.uses[f])) {
			to = append(to, fmt.Sprintf("%s(%d)", u, g.uses[f][u]))
		}
		if len(to) == 0 {
			to = []string{"-"}
		}
		fmt.Fprintf(&b, "  %-*s -> %s\n", w, f, strings.Join(to, " "))
	}
	return b.String()
}

// exportImporter returns an importer that reads the compiler's export data
// of the packages that dirs import, as go list -export reports it.
func exportImporter(t *testing.T, dirs []string) types.Importer {
	t.Helper()
	args := []string{"list", "-export", "-deps", "-f", "{{.ImportPath}} {{.Export}}"}
	for _, d := range dirs {
		args = append(args, "./"+d)
	}
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	export := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if path, file, ok := strings.Cut(sc.Text(), " "); ok && file != "" {
			export[path] = file
		}
	}
	fset := token.NewFileSet()
	return importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		file, ok := export[path]
		if !ok {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(file)
	})
}
