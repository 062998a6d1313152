// go-chat: the chat example's protocol (examples/04_chat.c) served the
// way a Go programmer writes a chat server, as the peer of the fan-out
// benchmark (docs/BENCHMARKS.md, "Chat fan-out"; scripts/chat-ab.sh).
//
//	go-chat [--rate N] [port]   (default 7001; 0 picks a free port)
//	  --rate N   lines a client may say per second (default 50; 0: no limit)
//
// It prints "listening on PORT" on stdout once it accepts, like the
// example, and stops on SIGINT or SIGTERM: every client gets
// "* server stopping" and is closed once its output has gone out, for at
// most five seconds; a second signal stops at once.
//
// The protocol is the example's, line for line: "/nick NAME", "/join ROOM"
// (an optional leading "#", case ignored), "/who", "/rooms", "/stats",
// "/quit", and any other line is said to the room as "NAME: text" to
// every member, the sender included. A new client is "guest<N>" in
// "lobby" and is told "* welcome, you are guest<N>". Rooms of up to 100
// members announce joins, leaves and renames to everyone; bigger ones
// tell a newcomer only its own join and everyone a summary at most once a
// second. A line over 4096 bytes gets "! line too long" and a close; a
// client more than 4 MiB behind in reading is closed (the runtime's
// TR_TCP_WRITE_MAX). /stats reports 0 queued: lines are not queued at a
// room here, they are copied to the members' output at once.
//
// The design:
//
//   - A goroutine per connection reads its lines (bufio, no allocation per
//     line) and acts on each at once: a line said is copied, under the
//     room's mutex, into the output buffer of every member, so every member
//     sees the room's lines in one order.
//   - A writer goroutine per connection: whatever was queued for it since
//     its last write leaves in one write. Appending never blocks the
//     sender, so a room is never held up by a slow member's socket.
//   - The names and the room table are maps behind one server mutex,
//     taken only by joins, leaves, renames and /rooms; saying a line takes
//     only its room's mutex. Lock order: server, then room, then a
//     client's output.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	nameMax      = 32   // nicks and room names
	lineMax      = 4096 // longest input line, without its "\n"
	announceMax  = 100  // rooms up to this size announce each change
	summaryEvery = time.Second
	rateWindow   = time.Second
	writeMax     = 4 << 20 // output a client may have waiting
	stopTimeout  = 5 * time.Second
	lobby        = "lobby"
)

type server struct {
	rate int // lines per rateWindow; 0: no limit

	mu        sync.Mutex
	nicks     map[string]*client
	rooms     map[string]*room // by lower-case name
	nextGuest int
	stopping  bool
}

type room struct {
	name string // as its first member spelled it

	mu      sync.Mutex
	members map[*client]struct{}
	// Changes of a big room, not yet in a summary.
	joined, left, renamed int
	summaryArmed          bool
}

type client struct {
	srv  *server
	conn *net.TCPConn

	// Owned by the client's goroutine. Others read nick only under the
	// lock of the room the client is in, and it changes only under it.
	nick      string
	room      *room
	line      []byte // scratch for "NAME: text\n"
	windowEnd time.Time
	said      int
	warned    bool

	// The output, shared with the writer goroutine.
	mu      sync.Mutex
	out     []byte
	closing bool // nothing more is queued; close once out is written
	wake    chan struct{}
}

// ----------------------------------------------------------------------
// Output

// send queues b for the client's writer, which copies it: b may be
// reused at once. It never blocks.
func (c *client) send(b []byte) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	if len(c.out)+len(b) > writeMax {
		// A client that does not read: drop it, not the room.
		c.closing = true
		c.out = nil
		c.mu.Unlock()
		c.conn.Close()
		return
	}
	c.out = append(c.out, b...)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // the writer is already due to look
	}
}

func (c *client) sendf(format string, args ...any) {
	c.send([]byte(fmt.Sprintf(format, args...)))
}

// closeAfterFlush: what is queued goes out, then the connection closes
// (which also ends the reading goroutine if it is still reading).
func (c *client) closeAfterFlush() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeLoop writes everything queued since its last write in one write.
// Two buffers change places, so the senders append to one while the
// other is on its way to the socket.
func (c *client) writeLoop() {
	var buf []byte
	for range c.wake {
		c.mu.Lock()
		buf, c.out = c.out, buf[:0]
		closing := c.closing
		c.mu.Unlock()
		if len(buf) > 0 {
			if _, err := c.conn.Write(buf); err != nil {
				c.mu.Lock()
				c.closing = true
				c.out = nil
				c.mu.Unlock()
				c.conn.Close()
				return
			}
		}
		if closing {
			c.conn.Close()
			return
		}
		if cap(buf) > 1<<20 {
			buf = nil // a burst is over: do not keep its memory
		}
	}
}

// ----------------------------------------------------------------------
// Rooms: each method runs with r.mu held

func (r *room) say(b []byte) {
	for m := range r.members {
		m.send(b)
	}
}

// announces: whether a room of n members (counting the one who comes,
// goes or changes name) tells everyone about each change.
func announces(n int) bool { return n <= announceMax }

// note counts a change of a big room for its next summary.
func (r *room) note(counter *int) {
	*counter++
	if !r.summaryArmed {
		r.summaryArmed = true
		time.AfterFunc(summaryEvery, r.summary)
	}
}

func (r *room) summary() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.summaryArmed = false
	if r.joined+r.left+r.renamed == 0 {
		return
	}
	r.say([]byte(fmt.Sprintf("* %s: %d joined, %d left, %d renamed, %d here\n",
		r.name, r.joined, r.left, r.renamed, len(r.members))))
	r.joined, r.left, r.renamed = 0, 0, 0
}

// ----------------------------------------------------------------------
// Names and rooms: each method runs with s.mu held

// enter puts c in the room called name, creating it on its first join.
func (s *server) enter(c *client, name string) {
	key := strings.ToLower(name)
	r := s.rooms[key]
	if r == nil {
		r = &room{name: name, members: make(map[*client]struct{})}
		s.rooms[key] = r
	}
	r.mu.Lock()
	if announces(len(r.members) + 1) {
		r.say([]byte(fmt.Sprintf("* %s joined %s\n", c.nick, r.name)))
	} else {
		r.note(&r.joined)
	}
	r.members[c] = struct{}{}
	c.room = r
	// Under the room's lock: the newcomer's join comes before anything
	// said in the room after it.
	c.sendf("* %s joined %s\n", c.nick, r.name)
	r.mu.Unlock()
}

// leave takes c out of its room; an empty room is forgotten.
func (s *server) leave(c *client) {
	r := c.room
	if r == nil {
		return
	}
	r.mu.Lock()
	delete(r.members, c)
	n := len(r.members)
	if announces(n + 1) {
		r.say([]byte(fmt.Sprintf("* %s left\n", c.nick)))
	} else {
		r.note(&r.left)
	}
	r.mu.Unlock()
	if n == 0 {
		delete(s.rooms, strings.ToLower(r.name))
	}
	c.room = nil
}

// ----------------------------------------------------------------------
// A client's lines

func validName(b []byte) bool {
	if len(b) == 0 || len(b) > nameMax {
		return false
	}
	for _, ch := range b {
		ok := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' ||
			ch >= '0' && ch <= '9' || ch == '_' || ch == '-'
		if !ok {
			return false
		}
	}
	return true
}

// rateOK counts a line said against --rate: a window opens with the
// first line after a quiet spell; past the limit the client hears
// "! slow down" once per window and the line is dropped.
func (c *client) rateOK() bool {
	if c.srv.rate == 0 {
		return true
	}
	now := time.Now()
	if now.After(c.windowEnd) {
		c.windowEnd = now.Add(rateWindow)
		c.said, c.warned = 0, false
	}
	if c.said >= c.srv.rate {
		if !c.warned {
			c.warned = true
			c.send([]byte("! slow down\n"))
		}
		return false
	}
	c.said++
	return true
}

func (c *client) say(text []byte) {
	r := c.room
	if r == nil {
		c.send([]byte("! not in a room\n"))
		return
	}
	c.line = append(c.line[:0], c.nick...)
	c.line = append(c.line, ": "...)
	c.line = append(c.line, text...)
	c.line = append(c.line, '\n')
	r.mu.Lock()
	r.say(c.line)
	r.mu.Unlock()
}

func (c *client) setNick(arg []byte) {
	if !validName(arg) {
		c.send([]byte("! bad nick\n"))
		return
	}
	nick := string(arg)
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	if owner := s.nicks[nick]; owner != nil && owner != c {
		c.send([]byte("! nick taken\n"))
		return
	}
	c.sendf("* you are now %s\n", nick)
	if nick == c.nick {
		return
	}
	delete(s.nicks, c.nick)
	s.nicks[nick] = c
	r := c.room
	if r == nil {
		c.nick = nick
		return
	}
	r.mu.Lock()
	if announces(len(r.members)) {
		r.say([]byte(fmt.Sprintf("* %s is now %s\n", c.nick, nick)))
	} else {
		r.note(&r.renamed)
	}
	c.nick = nick
	r.mu.Unlock()
}

func (c *client) join(arg []byte) {
	arg = bytes.TrimPrefix(arg, []byte("#"))
	if !validName(arg) {
		c.send([]byte("! bad room\n"))
		return
	}
	name := string(arg)
	if c.room != nil && strings.EqualFold(c.room.name, name) {
		c.sendf("! already in %s\n", c.room.name)
		return
	}
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leave(c)
	if s.stopping {
		c.sendf("! cannot join %s\n", name)
		return
	}
	s.enter(c, name)
}

func (c *client) who() {
	r := c.room
	if r == nil {
		c.send([]byte("! not in a room\n"))
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.members))
	for m := range r.members {
		names = append(names, m.nick)
	}
	sort.Strings(names)
	c.send([]byte("* members: " + strings.Join(names, " ") + "\n"))
}

func (c *client) rooms() {
	type entry struct {
		name string
		n    int
	}
	s := c.srv
	s.mu.Lock()
	list := make([]entry, 0, len(s.rooms))
	for _, r := range s.rooms {
		r.mu.Lock()
		list = append(list, entry{r.name, len(r.members)})
		r.mu.Unlock()
	}
	s.mu.Unlock()
	sort.Slice(list, func(i, j int) bool {
		return strings.ToLower(list[i].name) < strings.ToLower(list[j].name)
	})
	var b strings.Builder
	b.WriteString("* rooms:")
	for _, e := range list {
		fmt.Fprintf(&b, " %s(%d)", e.name, e.n)
	}
	b.WriteString("\n")
	c.send([]byte(b.String()))
}

func (c *client) stats() {
	r := c.room
	if r == nil {
		c.send([]byte("! not in a room\n"))
		return
	}
	r.mu.Lock()
	n := len(r.members)
	r.mu.Unlock()
	c.sendf("* %s: %d members, 0 queued, at most 0\n", r.name, n)
}

// handle runs one line (without its "\n"); false: the client quit.
func (c *client) handle(line []byte) bool {
	if len(line) == 0 {
		return true
	}
	if line[0] != '/' {
		if c.rateOK() {
			c.say(line)
		}
		return true
	}
	// "/cmd arg": split at the first space, trim the argument.
	cmd, arg := line, []byte(nil)
	if i := bytes.IndexByte(line, ' '); i >= 0 {
		cmd, arg = line[:i], bytes.Trim(line[i:], " ")
	}
	switch string(cmd) {
	case "/nick":
		c.setNick(arg)
	case "/join":
		c.join(arg)
	case "/who":
		c.who()
	case "/rooms":
		c.rooms()
	case "/stats":
		c.stats()
	case "/quit":
		c.leaveAll()
		c.send([]byte("* bye\n"))
		return false
	default:
		c.send([]byte("! unknown command\n"))
	}
	return true
}

// leaveAll frees the name (before the room says "left", so that whoever
// reads it can take the name at once) and leaves the room.
func (c *client) leaveAll() {
	s := c.srv
	s.mu.Lock()
	if s.nicks[c.nick] == c {
		delete(s.nicks, c.nick)
	}
	s.leave(c)
	s.mu.Unlock()
}

// ----------------------------------------------------------------------
// Connections

// hello names a new client "guest<N>" and puts it in the lobby; false if
// the server is stopping.
func (s *server) hello(c *client) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	for {
		s.nextGuest++
		c.nick = "guest" + strconv.Itoa(s.nextGuest)
		if s.nicks[c.nick] == nil {
			break
		}
	}
	s.nicks[c.nick] = c
	c.sendf("* welcome, you are %s\n", c.nick)
	s.enter(c, lobby)
	return true
}

func (s *server) serve(conn *net.TCPConn) {
	c := &client{srv: s, conn: conn, wake: make(chan struct{}, 1)}
	go c.writeLoop()
	defer c.closeAfterFlush()
	if !s.hello(c) {
		c.send([]byte("* server stopping\n"))
		return
	}
	r := bufio.NewReaderSize(conn, 16<<10)
	for {
		line, err := r.ReadSlice('\n')
		if err == nil {
			line = line[:len(line)-1]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
		}
		if err == bufio.ErrBufferFull || len(line) > lineMax {
			c.send([]byte("! line too long\n"))
			break
		}
		if err != nil {
			// The client is done (an unfinished last line is
			// dropped) or its connection was closed.
			break
		}
		if !c.handle(line) {
			return // /quit has left already
		}
	}
	// What it said before it went still reaches it: its echoes are queued
	// ahead of the close.
	c.leaveAll()
}

// stop tells every client and waits, at most stopTimeout or until a
// second signal, for all of them to be gone.
func (s *server) stop(ln net.Listener, sig <-chan os.Signal) {
	ln.Close()
	s.mu.Lock()
	s.stopping = true
	for _, c := range s.nicks {
		c.send([]byte("* server stopping\n"))
		c.closeAfterFlush()
	}
	s.mu.Unlock()
	deadline := time.After(stopTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-deadline:
			return
		case <-sig:
			return
		case <-tick.C:
			s.mu.Lock()
			n := len(s.nicks)
			s.mu.Unlock()
			if n == 0 {
				return
			}
		}
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: go-chat [--rate LINES_PER_SEC] [port]")
	os.Exit(2)
}

func main() {
	rate, port := 50, 7001
	args := os.Args[1:]
	hasPort := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--rate" && i+1 < len(args):
			v, err := strconv.Atoi(args[i+1])
			if err != nil || v < 0 || v > 1000000 {
				usage()
			}
			rate = v
			i++
		case !strings.HasPrefix(a, "-") && !hasPort:
			v, err := strconv.Atoi(a)
			if err != nil || v < 0 || v > 65535 {
				usage()
			}
			port, hasPort = v, true
		default:
			usage()
		}
	}

	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{Port: port})
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-chat: cannot listen: %v\n", err)
		os.Exit(1)
	}
	s := &server{
		rate:  rate,
		nicks: make(map[string]*client),
		rooms: make(map[string]*room),
	}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		for {
			conn, err := ln.AcceptTCP()
			if errors.Is(err, net.ErrClosed) {
				return // closed by stop
			}
			if err != nil {
				// Out of descriptors, say: wait, do not spin.
				fmt.Fprintf(os.Stderr, "go-chat: accept: %v\n", err)
				time.Sleep(10 * time.Millisecond)
				continue
			}
			go s.serve(conn)
		}
	}()
	// The one line on stdout; scripts wait for it.
	fmt.Printf("listening on %d\n", ln.Addr().(*net.TCPAddr).Port)
	<-sig
	s.stop(ln, sig)
}
