package logsub

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"
)

// pipeWait bounds how long closing a pipe waits for its command to exit
// after its standard input closed; then the command is killed.
const pipeWait = 5 * time.Second

// pipe is a command reading log lines on its standard input. It starts on
// the first line and restarts after a failure.
type pipe struct {
	cmd   string
	proc  *exec.Cmd
	stdin io.WriteCloser
	w     *bufio.Writer
}

func (p *pipe) start() error {
	c := exec.Command("/bin/sh", "-c", p.cmd)
	c.Stdout = os.Stderr
	c.Stderr = os.Stderr
	in, err := c.StdinPipe()
	if err != nil {
		return err
	}
	if err := c.Start(); err != nil {
		return fmt.Errorf("logsub: pipe %q: %w", p.cmd, err)
	}
	p.proc, p.stdin, p.w = c, in, bufio.NewWriterSize(in, 64<<10)
	return nil
}

func (p *pipe) writeLine(line []byte) error {
	if p.proc == nil {
		if err := p.start(); err != nil {
			return err
		}
	}
	_, err := p.w.Write(line)
	if err == nil {
		err = p.w.WriteByte('\n')
	}
	if err != nil {
		p.close()
	}
	return err
}

func (p *pipe) flush() error {
	if p.proc == nil {
		return nil
	}
	if err := p.w.Flush(); err != nil {
		p.close()
		return err
	}
	return nil
}

// close flushes and closes the command's input and waits for it to exit.
func (p *pipe) close() error {
	if p.proc == nil {
		return nil
	}
	ferr := p.w.Flush()
	p.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- p.proc.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-time.After(pipeWait):
		p.proc.Process.Kill()
		werr = <-done
	}
	p.proc = nil
	if ferr != nil || werr != nil {
		return fmt.Errorf("logsub: pipe %q: %w", p.cmd, errors.Join(ferr, werr))
	}
	return nil
}
