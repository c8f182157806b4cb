/* The real node's sandbox ("pause") container: holds a pod's namespaces, reaps zombies, exits on
 * SIGINT/SIGTERM. Built with `gcc -static` by tests/testenv/node/images.sh because no registry with
 * registry.k8s.io/pause is reachable from the test machines. */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) {
  (void)sig;
  _exit(0);
}

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction sa = {0};
  if (getpid() != 1) fprintf(stderr, "pause: warning: not running as pid 1\n");
  sa.sa_handler = stop;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sa.sa_handler = reap;
  sa.sa_flags = SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, NULL);
  for (;;) pause();
}
