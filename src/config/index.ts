/**
 * Configuration: the entry point. loadConfig reads the command line and the configuration file
 * and returns what to run with which Config; everything else the CLI and the tests need is
 * exported from here too. Follows the Bitcoin Core and Tor operator conventions (bitcoin.conf,
 * torrc): a file of `key=value` lines whose keys are the long option names, and a command line that
 * wins over the file.
 *
 * - defaults.ts: the Config shape and every operator default, with where its number comes from
 * - options.ts: the option table, the example values, the --help text
 * - sources.ts and file-syntax.ts: the command line and the file, read into raw values
 * - interpret.ts: raw values to a Config, each option's rules and the safety checks
 * - proxy-url.ts: --upstream-proxy and --onion-proxy URLs, parsed, and written without the password
 */
import { existsSync } from 'node:fs';

import { CONFIG_ENV, type Config, SYSTEM_CONFIG_FILE, defaultConfig } from './defaults.js';
import { type Command, interpret } from './interpret.js';
import { EXAMPLE_VALUES } from './options.js';
import { configError, defaultConfigFiles, parseCommandLine, readConfigFile } from './sources.js';

export * from './defaults.js';
export { type Command } from './interpret.js';
export { HELP_TEXT, OPTIONS, type OptionName } from './options.js';
export { describeProxy, parseProxyUrl } from './proxy-url.js';
export { defaultConfigFiles } from './sources.js';

export interface ParsedCommand {
  command: Command;
  config: Config;
  /** The configuration file that was read, if any (--config, BIP324_PROXY_CONFIG or the default lookup). */
  configFile?: string;
  /** status --full: whole session ids */
  full?: boolean;
}

/**
 * Parse argv (without node and script) and the optional --config ini file; the command line wins over the file.
 * Throws ProxyError ERR_CONFIG with a clear message naming the option.
 */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env, systemFile: string = SYSTEM_CONFIG_FILE): ParsedCommand {
  const { source: cli, positionals } = parseCommandLine(argv);

  let command: Command = 'run';
  if (positionals.length > 0) {
    if (positionals[0] !== 'status') throw configError(`unknown command '${positionals[0]}' (the only command is status; see --help)`);
    if (positionals.length > 1) throw configError(`unexpected argument '${positionals[1]}' after status`);
    command = 'status';
  }
  // Help and version must work whatever else is broken, so nothing else is read.
  if (cli.values.get('help') === true) return { command: 'help', config: defaultConfig() };
  if (cli.values.get('version') === true) return { command: 'version', config: defaultConfig() };

  const full = cli.values.get('full') === true;
  if (full && command !== 'status') throw configError('--full only applies to status: bip324-proxy status --full');

  // An explicit file must exist; the default places are only read when something is there.
  const fromCli = cli.values.get('config');
  if (fromCli === '') throw configError(`--config: the file name is empty; e.g. ${EXAMPLE_VALUES.config}`);
  let configFile: string | undefined;
  let label = '--config';
  if (typeof fromCli === 'string') {
    configFile = fromCli;
  } else if (env[CONFIG_ENV]) {
    configFile = env[CONFIG_ENV];
    label = CONFIG_ENV;
  } else {
    configFile = defaultConfigFiles(env, systemFile).find((candidate) => existsSync(candidate));
    label = 'configuration file';
  }
  const file = configFile === undefined ? undefined : readConfigFile(configFile, label);

  const config = interpret(cli, file, command);
  return { command, config, ...(configFile === undefined ? {} : { configFile }), ...(full ? { full } : {}) };
}
