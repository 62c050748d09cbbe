/**
 * The two sources of option values, read into the same raw form before anything is interpreted:
 * the command line (node's parseArgs, with the option table) and the configuration file (its
 * syntax is file-syntax.ts), and where that file is looked for when none is named. Errors name
 * the option as the operator wrote it: "--listen" or "listen (in FILE)".
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { parseArgs } from 'node:util';

import { ProxyError } from '../errors.js';
import { CONFIG_FILE_NAME, SYSTEM_CONFIG_FILE } from './defaults.js';
import { ConfigSyntaxError, parseConfigText } from './file-syntax.js';
import { OPTIONS, type OptionName, type OptionSpec, exampleValue, isOptionName } from './options.js';

export function configError(message: string): ProxyError {
  return new ProxyError('ERR_CONFIG', message);
}

export type RawValue = string | boolean | string[];

export interface RawSource {
  values: Map<OptionName, RawValue>;
  /** How an error names an option from this source: "--listen" or "listen (in FILE)". */
  label(name: OptionName): string;
}

/** The command line: its options as raw values, and the words that are not options (a command). */
export function parseCommandLine(argv: string[]): { source: RawSource; positionals: string[] } {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {};
  for (const [name, spec] of Object.entries(OPTIONS) as [string, OptionSpec][]) {
    options[name] = { type: spec.type, ...(spec.multiple === true ? { multiple: true } : {}), ...(spec.short === undefined ? {} : { short: spec.short }) };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    // allowNegative: --no-v2-only undoes v2-only=1 from the file, since the command line wins.
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true, allowNegative: true });
  } catch (err) {
    // Only the user's mistakes become ERR_CONFIG; anything else is a bug here and must show as one.
    if (!String((err as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS_')) throw err;
    throw configError(describeParseArgsError(err, argv));
  }
  const values = new Map<OptionName, RawValue>();
  for (const [name, value] of Object.entries(parsed.values)) {
    if (value === undefined || !isOptionName(name)) continue;
    const spec: OptionSpec = OPTIONS[name];
    if (spec.type === 'boolean' && typeof value !== 'boolean') continue;
    values.set(name, Array.isArray(value) ? value.map(String) : value);
  }
  return { source: { values, label: (name) => `--${name}` }, positionals: parsed.positionals };
}

/** parseArgs messages suggest "--" tricks that do not apply here; keep ours short and naming the option. */
function describeParseArgsError(err: unknown, argv: string[]): string {
  const e = err as { code?: string; message?: string };
  const quoted = /'([^']*)'/.exec(e.message ?? '')?.[1] ?? '';
  const option = quoted.split(' ')[0] ?? quoted;
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      const name = option.replace(/^-+/, '').replace(/^no-/, '');
      if (option.startsWith('--no-') && isOptionName(name) && OPTIONS[name].type === 'string') {
        return `${option}: only on/off options can be negated`;
      }
      return `unknown option ${option} (see --help)`;
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/argument is ambiguous/.test(e.message ?? '')) {
        // parseArgs refuses "--max-connections -5": the value looks like the next option.
        const next = argv[argv.indexOf(option) + 1] ?? '';
        const example = `${option} ${exampleValue(option.replace(/^-+/, ''))}`;
        return `${option}: '${next}' looks like an option, not a value; e.g. ${example} (write ${option}=${next} for a value that starts with a dash)`;
      }
      if (/argument missing/.test(e.message ?? '')) return `${option} needs a value`;
      if (/does not take an argument/.test(e.message ?? '')) return `${option} does not take a value`;
      return `${option}: ${e.message ?? 'invalid value'}`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument '${option}' (see --help)`;
    default:
      return e.message ?? String(err);
  }
}

/** A configuration file as raw values; `optionLabel` names where its name came from, for errors. */
export function readConfigFile(file: string, optionLabel: string): RawSource {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw configError(`${optionLabel}: cannot read ${file} (${reason})`);
  }
  let lines;
  try {
    lines = parseConfigText(text);
  } catch (err) {
    if (err instanceof ConfigSyntaxError) throw configError(`config file ${file}, line ${err.line}: ${err.message}`);
    throw err;
  }
  // Repeated keys are collected in file order, so `listen=` twice works like --listen twice.
  const collected = new Map<string, { items: (string | true)[]; line: number }>();
  for (const { key, value, line } of lines) {
    const entry = collected.get(key) ?? { items: [], line };
    entry.items.push(value);
    collected.set(key, entry);
  }
  const values = new Map<OptionName, RawValue>();
  const where = `config file ${file}`;
  for (const [key, { items, line }] of collected) {
    if (!isOptionName(key) || (OPTIONS[key] as OptionSpec).cliOnly === true) {
      const hint = isOptionName(key) ? `${key} is only a command-line option` : `unknown key '${key}'`;
      throw configError(`${where}, line ${line}: ${hint} (keys are the long option names without dashes, e.g. listen=127.0.0.1:1324)`);
    }
    const label = `${key} (in ${file})`;
    const spec: OptionSpec = OPTIONS[key];
    if (spec.type === 'boolean') {
      if (items.length > 1) throw configError(`${label} is given more than once`);
      values.set(key, parseFileBoolean(label, items[0]));
      continue;
    }
    const strings = items.map((item) => {
      // A bare "key" line is an on/off switch; a string option needs "key=value".
      if (typeof item !== 'string' || item === '') throw configError(`${label} needs a value (${key}=${spec.arg ?? 'VALUE'})`);
      return item;
    });
    if (spec.multiple === true) values.set(key, strings);
    else {
      if (strings.length > 1) throw configError(`${label} is given more than once`);
      values.set(key, strings[0]);
    }
  }
  return { values, label: (name) => `${name} (in ${file})` };
}

function parseFileBoolean(label: string, value: unknown): boolean {
  if (value === true || value === false) return value;
  if (typeof value === 'string') {
    const v = value.toLowerCase();
    if (v === '1' || v === 'true' || v === 'yes' || v === 'on') return true;
    if (v === '0' || v === 'false' || v === 'no' || v === 'off') return false;
  }
  throw configError(`${label} must be 1 or 0 (true/false, yes/no, on/off), not '${String(value)}'`);
}

/**
 * Where to look for a configuration file when neither --config nor $BIP324_PROXY_CONFIG names one,
 * in order: the user's ($XDG_CONFIG_HOME, or ~/.config, per the XDG Base Directory specification,
 * which ignores a relative XDG_CONFIG_HOME), then the system's.
 */
export function defaultConfigFiles(env: NodeJS.ProcessEnv, systemFile: string = SYSTEM_CONFIG_FILE): string[] {
  const xdg = env.XDG_CONFIG_HOME;
  const home = env.HOME;
  const base = xdg !== undefined && isAbsolute(xdg) ? xdg : home !== undefined && isAbsolute(home) ? join(home, '.config') : undefined;
  return [...(base === undefined ? [] : [join(base, 'bip324-proxy', CONFIG_FILE_NAME)]), systemFile];
}
