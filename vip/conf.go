package vip

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// NotifyTarget is a host or prefix whose neighbour caches are refreshed
// when this member acquires an interface on Dev (wackamole's Notify).
type NotifyTarget struct {
	Dev    string
	Prefix netip.Prefix
	// Throttle bounds the announcements per second sent to the prefix's
	// hosts. Zero means unthrottled.
	Throttle int
}

// ConfFile is a parsed wackamole.conf: the settings this package uses and
// the ones a daemon may use (Spread, Group, Control) kept as written.
type ConfFile struct {
	Spread              string // the Spread daemon ("4803" or "port@host")
	SpreadRetryInterval time.Duration
	Group               string
	Control             string
	Mature              time.Duration
	Balance             Balance
	ARPCache            time.Duration // Arp-Cache: how often neighbours are collected
	// Prefer lists the names of the preferred VIFs (Prefer None: empty).
	Prefer []string
	VIFs   []VIF
	Notify []NotifyTarget
	// NotifyARPCache is the arp-cache keyword of Notify: also refresh the
	// hosts found in the neighbour caches of the members.
	NotifyARPCache bool
}

// maxConfSize bounds a configuration file.
const maxConfSize = 1 << 20

// ParseConf parses a wackamole.conf file. Keywords are case-insensitive;
// '#' starts a comment; durations are Go durations or plain seconds. Errors
// wrap ErrBadConfig and give the line.
//
//	Spread = 4803
//	Group = wack1
//	Mature = 5s
//	Balance { AcquisitionsPerRound = all  Interval = 4s }
//	Arp-Cache = 90s
//	Prefer None
//	VirtualInterfaces {
//	    { eth0:198.18.0.10/32 eth1:198.19.0.10/32 }
//	    eth0:198.18.0.11/32
//	}
//	Notify { eth0:198.18.0.1/32  eth0:198.18.0.0/24 throttle 16  arp-cache }
func ParseConf(r io.Reader) (*ConfFile, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxConfSize+1))
	if err != nil {
		return nil, fmt.Errorf("vip: reading configuration: %w", err)
	}
	if len(data) > maxConfSize {
		return nil, fmt.Errorf("%w: file larger than %d bytes", ErrBadConfig, maxConfSize)
	}
	p := &confParser{toks: lex(data)}
	c := &ConfFile{}
	if err := p.file(c); err != nil {
		return nil, err
	}
	if len(c.VIFs) > 0 {
		if err := ValidateVIFs(c.VIFs); err != nil {
			return nil, err
		}
	}
	return c, nil
}

type token struct {
	s    string
	line int
}

func lex(data []byte) []token {
	var toks []token
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxConfSize+1)
	line := 0
	for sc.Scan() {
		line++
		text, _, _ := strings.Cut(sc.Text(), "#")
		for _, f := range strings.Fields(strings.NewReplacer("{", " { ", "}", " } ", "=", " = ").Replace(text)) {
			toks = append(toks, token{f, line})
		}
	}
	return toks
}

type confParser struct {
	toks []token
	i    int
}

func (p *confParser) errf(format string, args ...any) error {
	line := 0
	if p.i < len(p.toks) {
		line = p.toks[p.i].line
	} else if len(p.toks) > 0 {
		line = p.toks[len(p.toks)-1].line
	}
	return fmt.Errorf("%w: line %d: %s", ErrBadConfig, line, fmt.Sprintf(format, args...))
}

func (p *confParser) peek() string {
	if p.i < len(p.toks) {
		return p.toks[p.i].s
	}
	return ""
}

func (p *confParser) next() (string, error) {
	if p.i >= len(p.toks) {
		return "", p.errf("unexpected end of file")
	}
	p.i++
	return p.toks[p.i-1].s, nil
}

func (p *confParser) expect(s string) error {
	t, err := p.next()
	if err != nil {
		return err
	}
	if !strings.EqualFold(t, s) {
		p.i--
		return p.errf("want %q, got %q", s, t)
	}
	return nil
}

// value parses "= word".
func (p *confParser) value() (string, error) {
	if err := p.expect("="); err != nil {
		return "", err
	}
	v, err := p.next()
	if err == nil && (v == "{" || v == "}" || v == "=") {
		p.i--
		return "", p.errf("want a value, got %q", v)
	}
	return v, err
}

func (p *confParser) duration() (time.Duration, error) {
	v, err := p.value()
	if err != nil {
		return 0, err
	}
	d, err := parseDuration(v)
	if err != nil {
		p.i--
		return 0, p.errf("%v", err)
	}
	return d, nil
}

func parseDuration(v string) (time.Duration, error) {
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration %q", v)
	}
	return d, nil
}

func (p *confParser) file(c *ConfFile) error {
	seenVIFs := false
	var prefer []Address
	for p.i < len(p.toks) {
		kw, _ := p.next()
		var err error
		switch strings.ToLower(kw) {
		case "spread":
			c.Spread, err = p.value()
		case "spreadretryinterval":
			c.SpreadRetryInterval, err = p.duration()
		case "group":
			c.Group, err = p.value()
		case "control":
			c.Control, err = p.value()
		case "mature":
			c.Mature, err = p.duration()
		case "arp-cache":
			c.ARPCache, err = p.duration()
		case "balance":
			err = p.balance(&c.Balance)
		case "prefer":
			prefer, err = p.prefer()
		case "virtualinterfaces":
			if seenVIFs {
				p.i--
				return p.errf("VirtualInterfaces given twice")
			}
			seenVIFs = true
			c.VIFs, err = p.vifs()
		case "notify":
			err = p.notify(c)
		default:
			p.i--
			return p.errf("unknown keyword %q", kw)
		}
		if err != nil {
			return err
		}
	}
	for _, a := range prefer {
		name := ""
		for _, v := range c.VIFs {
			for _, va := range v.Addrs {
				if va == a {
					name = v.normalize().Name
				}
			}
		}
		if name == "" {
			return fmt.Errorf("%w: preferred address %s is in no virtual interface", ErrBadConfig, a)
		}
		c.Prefer = append(c.Prefer, name)
	}
	return nil
}

func (p *confParser) balance(b *Balance) error {
	if err := p.expect("{"); err != nil {
		return err
	}
	for {
		kw, err := p.next()
		if err != nil {
			return err
		}
		switch strings.ToLower(kw) {
		case "}":
			return nil
		case "acquisitionsperround":
			v, err := p.value()
			if err != nil {
				return err
			}
			if strings.EqualFold(v, "all") {
				b.AcquisitionsPerRound = 0
				continue
			}
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil || n == 0 {
				p.i--
				return p.errf("AcquisitionsPerRound: want all or a positive number, got %q", v)
			}
			b.AcquisitionsPerRound = int(n)
		case "interval":
			if b.Interval, err = p.duration(); err != nil {
				return err
			}
		default:
			p.i--
			return p.errf("unknown Balance keyword %q", kw)
		}
	}
}

func (p *confParser) address() (Address, error) {
	t, err := p.next()
	if err != nil {
		return Address{}, err
	}
	a, err := ParseAddress(t)
	if err != nil {
		p.i--
		return Address{}, p.errf("%v", strings.TrimPrefix(err.Error(), ErrBadConfig.Error()+": "))
	}
	return a, nil
}

func (p *confParser) prefer() ([]Address, error) {
	if strings.EqualFold(p.peek(), "none") {
		p.i++
		return nil, nil
	}
	if p.peek() != "{" {
		a, err := p.address()
		return []Address{a}, err
	}
	p.i++
	var out []Address
	for p.peek() != "}" {
		a, err := p.address()
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	p.i++
	return out, nil
}

func (p *confParser) vifs() ([]VIF, error) {
	if err := p.expect("{"); err != nil {
		return nil, err
	}
	var out []VIF
	for {
		switch p.peek() {
		case "}":
			p.i++
			return out, nil
		case "{":
			p.i++
			var v VIF
			for p.peek() != "}" {
				a, err := p.address()
				if err != nil {
					return nil, err
				}
				v.Addrs = append(v.Addrs, a)
			}
			p.i++
			if len(v.Addrs) == 0 {
				return nil, p.errf("empty virtual interface")
			}
			out = append(out, v.normalize())
		default:
			a, err := p.address()
			if err != nil {
				return nil, err
			}
			out = append(out, VIF{Addrs: []Address{a}}.normalize())
		}
	}
}

func (p *confParser) notify(c *ConfFile) error {
	if err := p.expect("{"); err != nil {
		return err
	}
	for {
		t := p.peek()
		switch {
		case t == "}":
			p.i++
			return nil
		case strings.EqualFold(t, "arp-cache"):
			p.i++
			c.NotifyARPCache = true
		default:
			tok, err := p.next()
			if err != nil {
				return err
			}
			dev, pfx, ok := strings.Cut(tok, ":")
			prefix, perr := netip.ParsePrefix(pfx)
			if perr != nil {
				if a, aerr := netip.ParseAddr(pfx); aerr == nil {
					prefix, perr = netip.PrefixFrom(a, a.BitLen()), nil
				}
			}
			if !ok || dev == "" || perr != nil || prefix.Addr().Zone() != "" {
				p.i--
				return p.errf("notify target %q: want dev:address[/bits]", tok)
			}
			nt := NotifyTarget{Dev: dev, Prefix: prefix.Masked()}
			if strings.EqualFold(p.peek(), "throttle") {
				p.i++
				v, err := p.next()
				if err != nil {
					return err
				}
				n, err := strconv.ParseUint(v, 10, 16)
				if err != nil {
					p.i--
					return p.errf("throttle: want a number, got %q", v)
				}
				nt.Throttle = int(n)
			}
			c.Notify = append(c.Notify, nt)
		}
	}
}

// Format writes c in wackamole.conf syntax; ParseConf reads it back.
func (c *ConfFile) Format(w io.Writer) error {
	var b strings.Builder
	kv := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s = %s\n", k, v)
		}
	}
	dur := func(d time.Duration) string {
		if d == 0 {
			return ""
		}
		return d.String()
	}
	kv("Spread", c.Spread)
	kv("SpreadRetryInterval", dur(c.SpreadRetryInterval))
	kv("Group", c.Group)
	kv("Control", c.Control)
	kv("Mature", dur(c.Mature))
	kv("Arp-Cache", dur(c.ARPCache))
	if c.Balance != (Balance{}) {
		apr := "all"
		if c.Balance.AcquisitionsPerRound > 0 {
			apr = strconv.Itoa(c.Balance.AcquisitionsPerRound)
		}
		fmt.Fprintf(&b, "Balance {\n  AcquisitionsPerRound = %s\n", apr)
		if c.Balance.Interval > 0 {
			fmt.Fprintf(&b, "  Interval = %s\n", c.Balance.Interval)
		}
		b.WriteString("}\n")
	}
	if len(c.VIFs) > 0 {
		b.WriteString("VirtualInterfaces {\n")
		for _, v := range c.VIFs {
			b.WriteString("  {")
			for _, a := range v.Addrs {
				fmt.Fprintf(&b, " %s", a)
			}
			b.WriteString(" }\n")
		}
		b.WriteString("}\n")
	}
	if len(c.Prefer) == 0 {
		b.WriteString("Prefer None\n")
	} else {
		b.WriteString("Prefer {")
		for _, name := range c.Prefer {
			for _, v := range c.VIFs {
				if v.normalize().Name == name && len(v.Addrs) > 0 {
					fmt.Fprintf(&b, " %s", v.Addrs[0])
				}
			}
		}
		b.WriteString(" }\n")
	}
	if len(c.Notify) > 0 || c.NotifyARPCache {
		b.WriteString("Notify {\n")
		for _, n := range c.Notify {
			fmt.Fprintf(&b, "  %s:%s", n.Dev, n.Prefix)
			if n.Throttle > 0 {
				fmt.Fprintf(&b, " throttle %d", n.Throttle)
			}
			b.WriteString("\n")
		}
		if c.NotifyARPCache {
			b.WriteString("  arp-cache\n")
		}
		b.WriteString("}\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
