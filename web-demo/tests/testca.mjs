// @ts-check
// A test certificate authority for the TLS browser tests (tls.test.mjs, turn.test.mjs): a CA and
// leaf certificates for localhost and 127.0.0.1 made with openssl, and a HOME whose NSS database
// trusts the CA, so that a Chromium started with that HOME trusts the leaves (Chromium on Linux
// reads user-added CAs from $HOME/.pki/nssdb). Needs openssl and certutil (libnss3-tools).
// Not a test itself: its name does not match *.test.mjs.

import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * @typedef {object} TestCa
 * @property {string} key the CA's private key file
 * @property {string} cert the CA's certificate file
 * @property {string} pem the CA's certificate, PEM text
 * @property {string} home a HOME whose NSS database trusts the CA
 */

/**
 * Makes a CA in `dir`, and a HOME (`dir`/home) whose NSS database trusts it.
 * @param {string} dir
 * @returns {Promise<TestCa>}
 */
export async function makeCa(dir) {
  const key = join(dir, 'ca.key');
  const cert = join(dir, 'ca.pem');
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=Cascade test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const home = join(dir, 'home');
  const nssdb = join(home, '.pki', 'nssdb');
  mkdirSync(nssdb, { recursive: true });
  await run('certutil', ['-d', `sql:${nssdb}`, '-N', '--empty-password']);
  await run('certutil', ['-d', `sql:${nssdb}`, '-A', '-t', 'C,,', '-n', 'cascade-test-ca', '-i', cert]);
  return { key, cert, pem: readFileSync(cert, 'utf8'), home };
}

/**
 * A leaf certificate with `serial` (hex) for localhost and 127.0.0.1, signed by `ca`, in `dir`.
 * @param {string} dir
 * @param {TestCa} ca
 * @param {string} serial
 * @returns {Promise<{cert: string, key: string}>} the PEM files
 */
export async function makeLeaf(dir, ca, serial) {
  const leaf = { key: join(dir, `leaf-${serial}.key`), cert: join(dir, `leaf-${serial}.pem`) };
  const csr = join(dir, `leaf-${serial}.csr`);
  const ext = join(dir, `leaf-${serial}.ext`);
  writeFileSync(ext, 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await run('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', leaf.key, '-out', csr, '-subj', '/CN=localhost']);
  await run('openssl', ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', `0x${serial}`,
    '-days', '1', '-extfile', ext, '-out', leaf.cert]);
  return leaf;
}

/**
 * Copies `leaf`'s files over `to`'s, each written whole and renamed into place (as renewal tools
 * do).
 * @param {{cert: string, key: string}} leaf
 * @param {{cert: string, key: string}} to
 */
export function installLeaf(leaf, to) {
  for (const [from, dest] of [[leaf.cert, to.cert], [leaf.key, to.key]]) {
    writeFileSync(`${dest}.tmp`, readFileSync(from));
    renameSync(`${dest}.tmp`, dest);
  }
}

/**
 * The serial number (hex, upper case) of the certificate served at 127.0.0.1:`port` for
 * `localhost`, verified against `caPem`.
 * @param {number} port
 * @param {string} caPem
 * @returns {Promise<string>}
 */
export function servedSerial(port, caPem) {
  return new Promise((res, rej) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: caPem, timeout: 2000 }, () => {
      const serial = s.getPeerCertificate().serialNumber;
      s.end();
      res(serial);
    });
    s.on('timeout', () => s.destroy(new Error('timed out')));
    s.on('error', rej);
  });
}
