package atomicfile_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/coffer-project/coffer/internal/atomicfile"
)

func Example() {
	dir, err := os.MkdirTemp("", "atomicfile-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	path := filepath.Join(dir, "app.env")
	if err := atomicfile.Write(path, []byte("PORT=5432\n"), 0o640); err != nil {
		panic(err)
	}
	fi, _ := os.Stat(path)
	fmt.Println(fi.Mode())

	fifo := filepath.Join(dir, "pipe")
	syscall.Mkfifo(fifo, 0o600)
	err = atomicfile.Write(fifo, []byte("PORT=5432\n"), 0o600)
	fmt.Println(errors.Is(err, atomicfile.ErrNotRegular))
	// Output:
	// -rw-r-----
	// true
}
