package plugins

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the plugin in its own process group, so that killing
// the group reaches its children too, and asks the kernel to kill it if
// the gateway dies without a chance to clean up.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup kills the process group led by pid. It is called right after
// the leader was killed or seen dead: the id stays reserved while any
// member (a child the plugin started) lives, which is the case it is for.
func killGroup(pid int) {
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

// processAlive reports whether a process with this pid exists.
func processAlive(pid int) bool {
	return syscall.Kill(pid, 0) != syscall.ESRCH
}
