package interop

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeSnippet compiles the C example of README.md's "Using a queue
// from C" section against layout/shmq.h, with the flags the C peers are
// built with, so that the example keeps up with the header. The snippet's
// #include lines go to the top of the file and its statements into a
// function, beside the helpers it names (fail, handle, buf).
func TestReadmeSnippet(t *testing.T) {
	cc := compiler(t)
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "### Using a queue from C")
	if !ok {
		t.Fatal(`README.md has no "Using a queue from C" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	_, rest, ok := strings.Cut(section, "```c\n")
	snippet, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal(`README.md's "Using a queue from C" section has no C code block`)
	}
	var includes, body strings.Builder
	for _, line := range strings.Split(snippet, "\n") {
		if strings.HasPrefix(line, "#include") {
			includes.WriteString(line + "\n")
		} else {
			body.WriteString("\t" + line + "\n")
		}
	}
	src := includes.String() + `
static unsigned char buf[4096];
static int fail(const char *what, int err)
{
	fprintf(stderr, "%s: %s\n", what, shmq_strerror(err));
	return 1;
}
static void handle(const void *msg, size_t n) { fwrite(msg, 1, n, stdout); }

static int example(void)
{
` + body.String() + `	return 0;
}

int main(void) { return example(); }
`
	dir := t.TempDir()
	file := filepath.Join(dir, "readme.c")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := filepath.Abs(filepath.Join("..", "layout"))
	if err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{}, cflags...), "-I", d, file, "-o", filepath.Join(dir, "readme"))
	if b, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("the README's C example does not compile: %v\n%s\n%s", err, b, src)
	}
}
