package logsub

import (
	"strconv"
	"time"
)

// Strftime is a compiled strftime(3) format, read as glibc does in the C
// locale. It names rotated files and rewrites timestamps. A Strftime is
// immutable and safe for concurrent use.
type Strftime struct {
	src  string
	prog []sfTok
}

type sfTok struct {
	lit  string
	conv byte // 0 for literal text
}

// CompileStrftime compiles a strftime format. Conversions it does not know
// are copied literally, as glibc does; compiling never fails.
func CompileStrftime(format string) *Strftime {
	s := &Strftime{src: format}
	lit := func(t string) {
		if t == "" {
			return
		}
		if n := len(s.prog); n > 0 && s.prog[n-1].conv == 0 {
			s.prog[n-1].lit += t
			return
		}
		s.prog = append(s.prog, sfTok{lit: t})
	}
	for i := 0; i < len(format); {
		if format[i] != '%' {
			j := i
			for j < len(format) && format[j] != '%' {
				j++
			}
			lit(format[i:j])
			i = j
			continue
		}
		if i+1 >= len(format) {
			lit(format[i:])
			break
		}
		c := format[i+1]
		switch c {
		case 'a', 'A', 'b', 'B', 'd', 'D', 'e', 'F', 'h', 'H', 'I', 'j', 'm', 'M', 'n', 'p',
			'R', 's', 'S', 't', 'T', 'u', 'w', 'y', 'Y', 'z', 'Z', '%':
			s.prog = append(s.prog, sfTok{conv: c})
		default:
			lit(format[i : i+2])
		}
		i += 2
	}
	return s
}

// String returns the source format.
func (s *Strftime) String() string { return s.src }

// HasConversions reports whether the format contains any conversion other
// than %% (a file name pattern without one is a fixed name).
func (s *Strftime) HasConversions() bool {
	for _, t := range s.prog {
		if t.conv != 0 && t.conv != '%' {
			return true
		}
	}
	return false
}

// Format returns t formatted.
func (s *Strftime) Format(t time.Time) string { return string(s.Append(nil, t)) }

// Append appends t formatted to dst.
func (s *Strftime) Append(dst []byte, t time.Time) []byte {
	for _, k := range s.prog {
		if k.conv == 0 {
			dst = append(dst, k.lit...)
			continue
		}
		dst = sfConv(dst, k.conv, t)
	}
	return dst
}

var (
	sfDays   = [...]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
	sfMonths = [...]string{"January", "February", "March", "April", "May", "June", "July", "August",
		"September", "October", "November", "December"}
)

func pad(dst []byte, v, width int, c byte) []byte {
	var buf [20]byte
	b := strconv.AppendInt(buf[:0], int64(v), 10)
	for i := len(b); i < width; i++ {
		dst = append(dst, c)
	}
	return append(dst, b...)
}

func sfConv(dst []byte, c byte, t time.Time) []byte {
	switch c {
	case 'a':
		return append(dst, sfDays[t.Weekday()][:3]...)
	case 'A':
		return append(dst, sfDays[t.Weekday()]...)
	case 'b', 'h':
		return append(dst, sfMonths[t.Month()-1][:3]...)
	case 'B':
		return append(dst, sfMonths[t.Month()-1]...)
	case 'd':
		return pad(dst, t.Day(), 2, '0')
	case 'D':
		dst = pad(dst, int(t.Month()), 2, '0')
		dst = append(dst, '/')
		dst = pad(dst, t.Day(), 2, '0')
		dst = append(dst, '/')
		return pad(dst, t.Year()%100, 2, '0')
	case 'e':
		return pad(dst, t.Day(), 2, ' ')
	case 'F':
		dst = pad(dst, t.Year(), 4, '0')
		dst = append(dst, '-')
		dst = pad(dst, int(t.Month()), 2, '0')
		dst = append(dst, '-')
		return pad(dst, t.Day(), 2, '0')
	case 'H':
		return pad(dst, t.Hour(), 2, '0')
	case 'I':
		h := t.Hour() % 12
		if h == 0 {
			h = 12
		}
		return pad(dst, h, 2, '0')
	case 'j':
		return pad(dst, t.YearDay(), 3, '0')
	case 'm':
		return pad(dst, int(t.Month()), 2, '0')
	case 'M':
		return pad(dst, t.Minute(), 2, '0')
	case 'n':
		return append(dst, '\n')
	case 'p':
		if t.Hour() < 12 {
			return append(dst, "AM"...)
		}
		return append(dst, "PM"...)
	case 'R':
		dst = pad(dst, t.Hour(), 2, '0')
		dst = append(dst, ':')
		return pad(dst, t.Minute(), 2, '0')
	case 's':
		return strconv.AppendInt(dst, t.Unix(), 10)
	case 'S':
		return pad(dst, t.Second(), 2, '0')
	case 't':
		return append(dst, '\t')
	case 'T':
		dst = pad(dst, t.Hour(), 2, '0')
		dst = append(dst, ':')
		dst = pad(dst, t.Minute(), 2, '0')
		dst = append(dst, ':')
		return pad(dst, t.Second(), 2, '0')
	case 'u':
		wd := int(t.Weekday())
		if wd == 0 {
			wd = 7
		}
		return pad(dst, wd, 1, '0')
	case 'w':
		return pad(dst, int(t.Weekday()), 1, '0')
	case 'y':
		return pad(dst, t.Year()%100, 2, '0')
	case 'Y':
		return pad(dst, t.Year(), 4, '0')
	case 'z':
		_, off := t.Zone()
		sign := byte('+')
		if off < 0 {
			sign, off = '-', -off
		}
		dst = append(dst, sign)
		dst = pad(dst, off/3600, 2, '0')
		return pad(dst, off%3600/60, 2, '0')
	case 'Z':
		name, _ := t.Zone()
		return append(dst, name...)
	case '%':
		return append(dst, '%')
	}
	return dst
}

// appendCLFTime appends t as Apache's %t prints it, brackets included:
// [02/Jan/2006:15:04:05 -0700].
func appendCLFTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '[')
	dst = pad(dst, t.Day(), 2, '0')
	dst = append(dst, '/')
	dst = append(dst, sfMonths[t.Month()-1][:3]...)
	dst = append(dst, '/')
	dst = pad(dst, t.Year(), 4, '0')
	dst = append(dst, ':')
	dst = sfConv(dst, 'T', t)
	dst = append(dst, ' ')
	dst = sfConv(dst, 'z', t)
	return append(dst, ']')
}
