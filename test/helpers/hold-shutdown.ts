/**
 * Preloaded into a spawned daemon (node --import) by test/cli-signals.test.ts: every net.Server's
 * close() becomes a no-op that never calls back, so the listener stays open and the graceful
 * shutdown started by a first SIGTERM/SIGINT can never finish (as with a connection that will not
 * close). Only the rule "a second signal exits at once" can then end the process.
 *
 * Such a daemon would outlive a test process that dies without killing it (a mutation-testing
 * worker that is stopped, say): the test hands it a stdin pipe, and when that pipe closes the
 * daemon exits with status 99.
 */
import net from 'node:net';

net.Server.prototype.close = function close(this: net.Server): net.Server {
  return this;
};

process.stdin.on('end', () => process.exit(99));
process.stdin.on('error', () => process.exit(99));
process.stdin.resume();
process.stdin.unref?.();
