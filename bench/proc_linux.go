package bench

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// filesystems names the file systems a gateway's logs are likely to sit on,
// by their statfs magic numbers.
var filesystems = map[uint32]string{
	0xEF53:     "ext4", // ext2, ext3 and ext4 share it
	0x58465342: "xfs",
	0x9123683E: "btrfs",
	0x01021994: "tmpfs",
	0x794C7630: "overlay",
	0x2FC12FC1: "zfs",
	0x6969:     "nfs",
	0xF2F52010: "f2fs",
}

// fsType names the file system dir is on ("" when it cannot tell).
func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return ""
	}
	// Type is 32 bits wide on some platforms: the magic numbers are.
	t := uint32(st.Type)
	if name, ok := filesystems[t]; ok {
		return name
	}
	return "0x" + strconv.FormatUint(uint64(t), 16)
}

// childAttr puts a child in a process group of its own, so that it can
// be killed with its children, and has it sent SIGTERM should the bench
// die first (sent when the thread that started it ends: no goroutine
// here locks a thread and ends).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// killGroup kills a child started with childAttr and its children.
func killGroup(pid int) { syscall.Kill(-pid, syscall.SIGKILL) }

// childCPU says whether treeCPU counts a child's CPU here.
const childCPU = true

// clockTick is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// treeCPU is the user and system CPU time of process pid and of its
// children (nginx's master and workers), from /proc.
func treeCPU(pid int) time.Duration {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var ticks int64
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// After the command's closing parenthesis: state, ppid, … utime
		// and stime are the 12th and 13th fields.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); p != pid && ppid != pid {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * clockTick
}

// fileLimit is want, or the hard limit on open files when that is lower
// and this process may not raise it (nginx's workers then keep their
// limit rather than fail to set it).
func fileLimit(want int) int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || os.Geteuid() == 0 || uint64(want) <= l.Max {
		return want
	}
	return int(l.Max)
}
