// The recursive walk over a message's MIME tree. Only what would not survive
// transit is touched; every other part, delimiter, preamble and epilogue is
// copied as the very same octets.
import { contentInfo, isIdentityEncoding, type ContentInfo } from '../../message/mime/content-type.ts';
import { entityPieces, readEntity, setField, type Entity } from './header-block.ts';
import { normalizeHeader } from './header-step.ts';
import { describeTrouble, reencodeLeaf, reworkEncodedLeaf, type Trouble } from './leaf.ts';
import { findParts } from './multipart.ts';
import { pieceHas8bit, type Piece } from './pieces.ts';
import { Refusal } from './refusal.ts';
import { scanSpan, spanUnsafe, type Findings } from '../../message/mime/scan.ts';
import type { Walk } from './walk.ts';

/** Deeper nesting than any mailer produces; past it we refuse rather than recurse. */
export const MAX_DEPTH = 20;

/**
 * Normalizes the entity's header in place and returns its new body as pieces,
 * or null when the body stays as it is. `bodyFound`: the body's findings, when
 * already known.
 */
export function normalizeEntity(
  entity: Entity,
  path: string,
  kind: 'message' | 'part',
  defaultType: string,
  depth: number,
  walk: Walk,
  bodyFound?: Findings,
): Piece[] | null {
  normalizeHeader(entity.header, path, walk);
  const { eightBitMime } = walk.options;
  const found = bodyFound ?? scanSpan(walk.source, entity.body);
  const longest = found.longest;
  const eightBit = !eightBitMime && found.eightBit;
  const nul = found.nul;
  if (longest === 0 && !eightBit && !nul) return null;
  const info = contentInfo(entity.header.fields, defaultType);
  const trouble: Trouble = { longest, eightBit, nul, label: `${info.type} part${path ? ` ${path}` : ''}` };
  const cannot = (why: string): Refusal =>
    new Refusal(554, `${trouble.eightBit ? '5.6.3' : '5.6.0'} The ${trouble.label} needs re-encoding (${describeTrouble(trouble)}) but ${why}`);

  if (info.encoding === 'base64' || info.encoding === 'quoted-printable') return reworkEncodedLeaf(entity, info, trouble, walk);
  if (!isIdentityEncoding(info.encoding)) throw cannot(`its Content-Transfer-Encoding "${info.encoding}" is unknown`);
  if (info.type.startsWith('multipart/') || info.type === 'message/rfc822') {
    if (depth >= MAX_DEPTH) throw cannot(`it is nested deeper than ${MAX_DEPTH} levels`);
    const pieces = info.type === 'message/rfc822' ? enclosedMessage(entity, path, depth, walk, cannot) : multipart(entity, info, path, depth, walk, cannot);
    settleCompositeEncoding(entity, info, pieces, trouble.label, walk);
    return pieces;
  }
  // RFC 2046 §5.2.2-3: these must be 7bit, and nothing inside them can be re-encoded.
  if (info.type === 'message/partial' || info.type === 'message/external-body') throw cannot('RFC 2046 forbids encoding it');
  return reencodeLeaf(entity, info, kind, path, trouble, walk);
}

function multipart(entity: Entity, info: ContentInfo, path: string, depth: number, walk: Walk, cannot: (why: string) => Refusal): Piece[] {
  const boundary = info.params.boundary;
  if (!boundary) throw cannot('it has no boundary parameter');
  const { body } = entity;
  const src = walk.source;
  const layout = findParts(src, body, boundary);
  if (!layout) throw cannot('no delimiter line for its boundary was found');
  // RFC 2046 §5.1.5: in a digest, a part without Content-Type is a message.
  const childDefault = info.type === 'multipart/digest' ? 'message/rfc822' : 'text/plain';
  const { eightBitMime } = walk.options;
  const pieces: Piece[] = [];
  let at = body.start;
  const between = (end: number): void => {
    const octets = { start: at, end };
    // Preamble, delimiter lines and epilogue are kept byte for byte.
    if (spanUnsafe(src, octets, eightBitMime)) throw cannot('its preamble or epilogue would need changing');
    pieces.push(octets);
  };
  layout.parts.forEach((span, i) => {
    between(span.start);
    at = span.end;
    if (!spanUnsafe(src, span, eightBitMime)) {
      pieces.push(span);
      return;
    }
    const childPath = path ? `${path}.${i + 1}` : `${i + 1}`;
    const child = readEntity(src, span);
    if (typeof child === 'string') throw cannot(`the header of its part ${childPath} is malformed (${child})`);
    const out = normalizeEntity(child, childPath, 'part', childDefault, depth + 1, walk);
    pieces.push(...entityPieces(child, out));
  });
  between(body.end);
  return pieces;
}

function enclosedMessage(entity: Entity, path: string, depth: number, walk: Walk, cannot: (why: string) => Refusal): Piece[] {
  const inner = readEntity(walk.source, entity.body);
  if (typeof inner === 'string') throw cannot(`the header of the enclosed message is malformed (${inner})`);
  return entityPieces(inner, normalizeEntity(inner, path, 'message', 'text/plain', depth + 1, walk));
}

/**
 * A multipart or message/rfc822 may only be 7bit, 8bit or binary (RFC 2045
 * §6.4). Once its content was made 7-bit (or its lines short), a declared
 * 8bit/binary would be a lie to the next hop's 8BITMIME logic.
 */
function settleCompositeEncoding(entity: Entity, info: ContentInfo, pieces: Piece[], label: string, walk: Walk): void {
  if (info.encoding !== '8bit' && info.encoding !== 'binary') return;
  // Every line is short by now (children were fixed or refused).
  const encoding = pieces.some((p) => pieceHas8bit(walk.source, p)) ? '8bit' : '7bit';
  if (encoding === info.encoding) return;
  setField(entity.header, 'Content-Transfer-Encoding', encoding);
  walk.changes.push(`set Content-Transfer-Encoding: ${encoding} on the ${label}`);
}
