// Calls SOAP services through Sampan gateways with the npm soap package,
// as an X-Road information system would: for each call of the plan it
// asks its gateway for the service's WSDL with the getWsdl metaservice
// (described by xroad-meta.wsdl), saves the WSDL from the answer's
// attachment, builds a client from that WSDL pointed at its gateway and
// calls the operation, with an MTOM attachment when the plan gives one.
// It also asks for the provider's services with listMethods and
// allowedMethods.
//
// Usage: node client.js PLAN.json; writes one JSON object per call on
// standard output, and exits non-zero on the first failure.
'use strict';

const fs = require('fs');
const path = require('path');
const soap = require('soap');

const NS_XROAD = 'http://x-road.eu/xsd/xroad.xsd';
const NS_ID = 'http://x-road.eu/xsd/identifiers';
const NS_XOP = 'http://www.w3.org/2004/08/xop/include';

function escapeXML(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

// identifier renders an X-Road identifier element: its objectType and
// its parts in the identifiers namespace.
function identifier(name, objectType, parts) {
  let s = `<xrd:${name} xmlns:xrd="${NS_XROAD}" xmlns:id="${NS_ID}" id:objectType="${objectType}">`;
  for (const [k, v] of parts) {
    if (v !== undefined && v !== '') {
      s += `<id:${k}>${escapeXML(v)}</id:${k}>`;
    }
  }
  return s + `</xrd:${name}>`;
}

// setXRoadHeader replaces the client's SOAP headers with the X-Road
// header of message protocol 4.0 for a call of serviceCode.
function setXRoadHeader(client, call, serviceCode, serviceVersion, id) {
  client.clearSoapHeaders();
  const c = call.client;
  const s = call.service;
  client.addSoapHeader(identifier('client', 'SUBSYSTEM', [
    ['xRoadInstance', c.instance], ['memberClass', c.memberClass], ['memberCode', c.memberCode], ['subsystemCode', c.subsystem]]));
  client.addSoapHeader(identifier('service', 'SERVICE', [
    ['xRoadInstance', s.instance], ['memberClass', s.memberClass], ['memberCode', s.memberCode], ['subsystemCode', s.subsystem],
    ['serviceCode', serviceCode], ['serviceVersion', serviceVersion]]));
  client.addSoapHeader(`<xrd:id xmlns:xrd="${NS_XROAD}">${escapeXML(id)}</xrd:id>`);
  client.addSoapHeader(`<xrd:userId xmlns:xrd="${NS_XROAD}">${escapeXML(call.userId)}</xrd:userId>`);
  client.addSoapHeader(`<xrd:protocolVersion xmlns:xrd="${NS_XROAD}">4.0</xrd:protocolVersion>`);
}

// connect points client at the caller's gateway, over HTTPS with the
// caller's certificate when the plan gives one.
function connect(client, call) {
  client.setEndpoint(call.url);
  if (call.tls) {
    client.setSecurity(new soap.ClientSSLSecurity(call.tls.key, call.tls.cert, call.tls.ca));
  }
}

// requestHash is the xrd:requestHash of an answer's SOAP header, as the
// soap package parsed it.
function requestHash(header) {
  const h = header && header.requestHash;
  if (h === undefined) {
    return '';
  }
  return typeof h === 'object' ? String(h.$value !== undefined ? h.$value : '') : String(h);
}

async function run(call, metaWsdl) {
  const out = { label: call.label };

  // getWsdl through the caller's gateway: the WSDL is the answer's
  // attachment.
  const meta = await soap.createClientAsync(metaWsdl, { parseReponseAttachments: true });
  connect(meta, call);
  setXRoadHeader(meta, call, 'getWsdl', '', call.id + '-getWsdl');
  const [wres, , wheader, , wparts] = await meta.getWsdlAsync({ serviceCode: call.service.serviceCode, serviceVersion: call.service.serviceVersion });
  if (!wparts || !wparts.parts || wparts.parts.length !== 1) {
    throw new Error(`${call.label}: getWsdl answered no attachment`);
  }
  fs.writeFileSync(call.wsdlOut, wparts.parts[0].body);
  out.getWsdl = { id: call.id + '-getWsdl', serviceCode: wres.serviceCode, serviceVersion: wres.serviceVersion, requestHash: requestHash(wheader), contentType: wparts.parts[0].headers['content-type'] || '' };

  // listMethods and allowedMethods: the provider's services, all and
  // those this client may call.
  for (const op of ['listMethods', 'allowedMethods']) {
    setXRoadHeader(meta, call, op, '', call.id + '-' + op);
    const [res, , header] = await meta[op + 'Async']({});
    const listed = res && res.service ? [].concat(res.service) : [];
    out[op] = { id: call.id + '-' + op, requestHash: requestHash(header), services: listed.map((s) => s.serviceCode), request: meta.lastRequest };
  }

  // The service, from the WSDL just fetched.
  const client = await soap.createClientAsync(call.wsdlOut);
  connect(client, call);
  setXRoadHeader(client, call, call.service.serviceCode, call.service.serviceVersion, call.id);
  const args = Object.assign({}, call.args);
  const options = {};
  if (call.attachment) {
    const a = call.attachment;
    // MTOM: the document element holds an xop:Include of the part.
    args.document = { $xml: `<xop:Include xmlns:xop="${NS_XOP}" href="cid:${escapeXML(a.contentId)}"/>` };
    options.attachments = [{ mimetype: a.contentType, contentId: a.contentId, name: path.basename(a.file), body: fs.readFileSync(a.file) }];
  }
  const [res, , header] = await client[call.operation + 'Async'](args, options);
  out.call = { id: call.id, requestHash: requestHash(header), result: res, request: client.lastRequest, requestHeaders: client.lastRequestHeaders };
  return out;
}

async function main() {
  const plan = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  for (const call of plan.calls) {
    let out;
    try {
      out = await run(call, plan.metaWsdl);
    } catch (err) {
      const body = err.response && err.response.data !== undefined ? String(err.response.data) : '';
      process.stderr.write(`${call.label}: ${err.stack || err}\n${body}\n`);
      process.exit(1);
    }
    process.stdout.write(JSON.stringify(out) + '\n');
  }
}

main();
