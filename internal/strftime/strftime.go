package strftime

import (
	"strconv"
	"time"
)

// Layout is a compiled strftime format. It is immutable and safe for
// concurrent use.
type Layout struct {
	src  string
	prog []tok
}

// tok is one piece of a compiled format: literal text, or a conversion
// character with its flag.
type tok struct {
	lit  string
	conv byte // 0 for literal text
	flag byte // 0, '-', '_', '0' or '^'
}

// Compile compiles a strftime format as glibc reads it in the C locale.
// Conversions it does not know are copied literally, as glibc does;
// compiling never fails.
func Compile(format string) *Layout {
	l := &Layout{src: format}
	lit := func(t string) {
		if t == "" {
			return
		}
		if n := len(l.prog); n > 0 && l.prog[n-1].conv == 0 {
			l.prog[n-1].lit += t
			return
		}
		l.prog = append(l.prog, tok{lit: t})
	}
	s := format
	for i := 0; i < len(s); {
		if s[i] != '%' {
			j := i
			for j < len(s) && s[j] != '%' {
				j++
			}
			lit(s[i:j])
			i = j
			continue
		}
		start := i
		i++
		var flag byte
		for i < len(s) && (s[i] == '-' || s[i] == '_' || s[i] == '0' || s[i] == '^') {
			flag = s[i]
			i++
		}
		if i < len(s) && (s[i] == 'E' || s[i] == 'O') {
			i++ // C locale: alternative representations are the plain ones
		}
		if i >= len(s) {
			lit(s[start:])
			break
		}
		c := s[i]
		i++
		switch c {
		case 'a', 'A', 'b', 'B', 'c', 'C', 'd', 'D', 'e', 'F', 'g', 'G', 'h', 'H', 'I', 'j', 'k', 'l',
			'm', 'M', 'n', 'p', 'P', 'r', 'R', 's', 'S', 't', 'T', 'u', 'U', 'V', 'w', 'W', 'x', 'X',
			'y', 'Y', 'z', 'Z', '%':
			l.prog = append(l.prog, tok{conv: c, flag: flag})
		default:
			lit(s[start:i])
		}
	}
	return l
}

// String returns the source format.
func (l *Layout) String() string { return l.src }

// HasConversions reports whether the format contains any conversion other
// than %% (a file name pattern without one is a fixed name).
func (l *Layout) HasConversions() bool {
	for _, k := range l.prog {
		if k.conv != 0 && k.conv != '%' {
			return true
		}
	}
	return false
}

// Format returns t formatted.
func (l *Layout) Format(t time.Time) string { return string(l.Append(nil, t)) }

// Append appends t formatted to dst.
func (l *Layout) Append(dst []byte, t time.Time) []byte {
	for _, k := range l.prog {
		if k.conv == 0 {
			dst = append(dst, k.lit...)
			continue
		}
		dst = appendConv(dst, k.conv, k.flag, t)
	}
	return dst
}

// AppendCLF appends t as Apache's %t prints it, brackets included:
// [02/Jan/2006:15:04:05 -0700].
func AppendCLF(dst []byte, t time.Time) []byte {
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	_, off := t.Zone()
	dst = append(dst, '[')
	dst = append2(dst, day)
	dst = append(dst, '/')
	dst = append(dst, monthAbbr[month-1]...)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, int64(year), 10)
	dst = append(dst, ':')
	dst = append2(dst, hour)
	dst = append(dst, ':')
	dst = append2(dst, minute)
	dst = append(dst, ':')
	dst = append2(dst, sec)
	dst = append(dst, ' ')
	dst = appendZone(dst, off)
	return append(dst, ']')
}

var (
	dayAbbr   = [...]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
	dayName   = [...]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
	monthAbbr = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
	monthName = [...]string{"January", "February", "March", "April", "May", "June", "July", "August",
		"September", "October", "November", "December"}
)

// append2 appends v with at least two digits.
func append2(dst []byte, v int) []byte {
	if v >= 100 || v < 0 {
		return strconv.AppendInt(dst, int64(v), 10)
	}
	return append(dst, byte('0'+v/10), byte('0'+v%10))
}

// appendZone appends a UTC offset in seconds as +hhmm or -hhmm.
func appendZone(dst []byte, off int) []byte {
	if off < 0 {
		dst = append(dst, '-')
		off = -off
	} else {
		dst = append(dst, '+')
	}
	dst = append2(dst, off/3600)
	return append2(dst, off%3600/60)
}

func appendNum(dst []byte, v, width int, pad, flag byte) []byte {
	switch flag {
	case '-':
		return strconv.AppendInt(dst, int64(v), 10)
	case '_':
		pad = ' '
	case '0':
		pad = '0'
	}
	if v < 0 {
		dst = append(dst, '-')
		v = -v
		width--
	}
	var buf [20]byte
	b := strconv.AppendInt(buf[:0], int64(v), 10)
	for i := len(b); i < width; i++ {
		dst = append(dst, pad)
	}
	return append(dst, b...)
}

func appendText(dst []byte, s string, flag byte) []byte {
	if flag != '^' {
		return append(dst, s...)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

func appendConv(dst []byte, c, flag byte, t time.Time) []byte {
	switch c {
	case 'a':
		return appendText(dst, dayAbbr[t.Weekday()], flag)
	case 'A':
		return appendText(dst, dayName[t.Weekday()], flag)
	case 'b', 'h':
		return appendText(dst, monthAbbr[t.Month()-1], flag)
	case 'B':
		return appendText(dst, monthName[t.Month()-1], flag)
	case 'c':
		dst = appendConv(dst, 'a', flag, t)
		dst = append(dst, ' ')
		dst = appendConv(dst, 'b', flag, t)
		dst = append(dst, ' ')
		dst = appendConv(dst, 'e', 0, t)
		dst = append(dst, ' ')
		dst = appendConv(dst, 'T', 0, t)
		dst = append(dst, ' ')
		return appendConv(dst, 'Y', 0, t)
	case 'C':
		return appendNum(dst, t.Year()/100, 2, '0', flag)
	case 'd':
		return appendNum(dst, t.Day(), 2, '0', flag)
	case 'D', 'x':
		dst = appendConv(dst, 'm', 0, t)
		dst = append(dst, '/')
		dst = appendConv(dst, 'd', 0, t)
		dst = append(dst, '/')
		return appendConv(dst, 'y', 0, t)
	case 'e':
		return appendNum(dst, t.Day(), 2, ' ', flag)
	case 'F':
		dst = appendNum(dst, t.Year(), 1, '0', 0)
		dst = append(dst, '-')
		dst = appendConv(dst, 'm', 0, t)
		dst = append(dst, '-')
		return appendConv(dst, 'd', 0, t)
	case 'g':
		y, _ := t.ISOWeek()
		return appendNum(dst, y%100, 2, '0', flag)
	case 'G':
		y, _ := t.ISOWeek()
		return appendNum(dst, y, 1, '0', flag)
	case 'H':
		return appendNum(dst, t.Hour(), 2, '0', flag)
	case 'I':
		return appendNum(dst, hour12(t), 2, '0', flag)
	case 'j':
		return appendNum(dst, t.YearDay(), 3, '0', flag)
	case 'k':
		return appendNum(dst, t.Hour(), 2, ' ', flag)
	case 'l':
		return appendNum(dst, hour12(t), 2, ' ', flag)
	case 'm':
		return appendNum(dst, int(t.Month()), 2, '0', flag)
	case 'M':
		return appendNum(dst, t.Minute(), 2, '0', flag)
	case 'n':
		return append(dst, '\n')
	case 'p':
		if t.Hour() < 12 {
			return append(dst, "AM"...)
		}
		return append(dst, "PM"...)
	case 'P':
		if t.Hour() < 12 {
			return append(dst, "am"...)
		}
		return append(dst, "pm"...)
	case 'r':
		dst = appendConv(dst, 'I', 0, t)
		dst = append(dst, ':')
		dst = appendConv(dst, 'M', 0, t)
		dst = append(dst, ':')
		dst = appendConv(dst, 'S', 0, t)
		dst = append(dst, ' ')
		return appendConv(dst, 'p', 0, t)
	case 'R':
		dst = appendConv(dst, 'H', 0, t)
		dst = append(dst, ':')
		return appendConv(dst, 'M', 0, t)
	case 's':
		return strconv.AppendInt(dst, t.Unix(), 10)
	case 'S':
		return appendNum(dst, t.Second(), 2, '0', flag)
	case 't':
		return append(dst, '\t')
	case 'T', 'X':
		dst = appendConv(dst, 'H', 0, t)
		dst = append(dst, ':')
		dst = appendConv(dst, 'M', 0, t)
		dst = append(dst, ':')
		return appendConv(dst, 'S', 0, t)
	case 'u':
		wd := int(t.Weekday())
		if wd == 0 {
			wd = 7
		}
		return appendNum(dst, wd, 1, '0', flag)
	case 'U':
		return appendNum(dst, (t.YearDay()-1-int(t.Weekday())+7)/7, 2, '0', flag)
	case 'V':
		_, w := t.ISOWeek()
		return appendNum(dst, w, 2, '0', flag)
	case 'w':
		return appendNum(dst, int(t.Weekday()), 1, '0', flag)
	case 'W':
		return appendNum(dst, (t.YearDay()-1-(int(t.Weekday())+6)%7+7)/7, 2, '0', flag)
	case 'y':
		return appendNum(dst, t.Year()%100, 2, '0', flag)
	case 'Y':
		return appendNum(dst, t.Year(), 1, '0', flag)
	case 'z':
		_, off := t.Zone()
		return appendZone(dst, off)
	case 'Z':
		name, _ := t.Zone()
		return appendText(dst, name, flag)
	case '%':
		return append(dst, '%')
	}
	return dst
}

func hour12(t time.Time) int {
	h := t.Hour() % 12
	if h == 0 {
		h = 12
	}
	return h
}
