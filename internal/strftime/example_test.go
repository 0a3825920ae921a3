package strftime_test

import (
	"fmt"
	"time"

	"github.com/peerscale/peerscale/internal/strftime"
)

func ExampleCompile() {
	l := strftime.Compile("/var/log/www/access.%Y%m%d-%H")
	t := time.Date(2026, 3, 7, 14, 5, 9, 0, time.UTC)
	fmt.Println(l.Format(t))
	fmt.Println(string(strftime.AppendCLF(nil, t)))
	// Output:
	// /var/log/www/access.20260307-14
	// [07/Mar/2026:14:05:09 +0000]
}
