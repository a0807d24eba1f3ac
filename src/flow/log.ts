/** The logging the flow components need; a pino logger fits as it is. */
export interface FlowLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

const noop = (): void => {};
export const silentFlowLogger: FlowLogger = { debug: noop, info: noop, warn: noop, error: noop };
