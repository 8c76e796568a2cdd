// The few parts of the npm `phoenix` client (no bundled types) that tests use to check our frames
// and the dev portal against Phoenix's own serializer and socket.
declare module "phoenix" {
  export interface PhoenixMessage {
    join_ref: string | null;
    ref: string | null;
    topic: string;
    event: string;
    payload: unknown;
  }
  export const Serializer: {
    encode(msg: PhoenixMessage, callback: (encoded: string) => void): void;
    decode(raw: string, callback: (msg: PhoenixMessage) => void): void;
  };
  export class Push {
    receive(status: string, callback: (response: unknown) => void): Push;
  }
  export class Channel {
    join(timeout?: number): Push;
    push(event: string, payload: unknown): Push;
    on(event: string, callback: (payload: unknown) => void): number;
    leave(): Push;
  }
  export class Socket {
    constructor(endPoint: string, opts?: Record<string, unknown>);
    connect(): void;
    disconnect(callback?: () => void, code?: number, reason?: string): void;
    channel(topic: string, params?: unknown): Channel;
    endPointURL(): string;
    onOpen(callback: () => void): void;
    onError(callback: (error: unknown) => void): void;
  }
}
