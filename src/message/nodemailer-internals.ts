// The parts of nodemailer we use that are not its public API: its base64 and
// quoted-printable encoders and two MIME helpers. nodemailer exports them
// (package.json "exports") but documents none of them, so a new release may
// rename or change them without notice. Everything goes through this one
// module, so an upgrade that breaks them breaks it here, in one place.
export { encode as base64Encode, wrap as base64Wrap } from 'nodemailer/lib/base64';
export { encode as qpEncode, wrap as qpWrap } from 'nodemailer/lib/qp';
export { encodeWord, parseHeaderValue } from 'nodemailer/lib/mime-funcs';
