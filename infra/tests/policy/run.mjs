#!/usr/bin/env node
// Policy tests: for each function of infra/template.yaml, evaluates the
// identity policies its execution role holds against the AWS calls the
// function makes (cases.yaml: `allow`) and against calls outside its job
// (`deny`), with @cloud-copilot/iam-simulate, offline.
//
//   cd infra/tests/policy && npm ci && node run.mjs [--template PATH]
//        [--cases PATH] [--verbose] [--explain] [--function NAME]
//
// Exits 1 listing every failing case (function, case, action, resource,
// expected, got, the code that makes the call), 2 when the template or the
// cases cannot be read.

import { readFileSync, readdirSync, existsSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import yaml from 'js-yaml'
import { runSimulation } from '@cloud-copilot/iam-simulate'
import { parseTemplate, Resolver, rolePolicies, environment, polledQueues, logGroup } from './cfn.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const repo = resolve(here, '../../..')

function args() {
  const a = { template: join(repo, 'infra/template.yaml'), cases: join(here, 'cases.yaml'), verbose: false, explain: false, only: null }
  const argv = process.argv.slice(2)
  for (let i = 0; i < argv.length; i++) {
    switch (argv[i]) {
      case '--template': a.template = resolve(argv[++i]); break
      case '--cases': a.cases = resolve(argv[++i]); break
      case '--verbose': case '-v': a.verbose = true; break
      case '--explain': a.explain = true; break
      case '--function': a.only = argv[++i]; break
      default: die(`unknown argument ${argv[i]}`)
    }
  }
  return a
}

function die(msg) {
  console.error(`policy tests: ${msg}`)
  process.exit(2)
}

const norm = (s) => String(s).toLowerCase().replace(/[^a-z0-9]/g, '')

// The function resource of each crate in functions/: its CodeUri, build
// metadata, FunctionName or logical id names the crate.
function functionResources(rv, crates) {
  const found = {}
  const unmatched = []
  for (const [id, r] of Object.entries(rv.t.Resources ?? {})) {
    if (r.Type !== 'AWS::Serverless::Function' && r.Type !== 'AWS::Lambda::Function') continue
    if (!rv.exists(r)) continue
    const p = r.Properties ?? {}
    const hints = [
      typeof p.CodeUri === 'string' ? p.CodeUri : '',
      r.Metadata?.BuildProperties?.Binary ?? '',
      typeof p.FunctionName === 'string' ? p.FunctionName : JSON.stringify(p.FunctionName ?? ''),
      typeof p.Handler === 'string' ? p.Handler : '',
      id,
    ].map(norm)
    // The longest crate name that a hint contains (so "snapshotvolumes" is
    // not taken for another crate whose name it contains).
    const crate = crates
      .filter((c) => hints.some((h) => h.includes(norm(c))))
      .sort((x, y) => y.length - x.length)[0]
    if (!crate) unmatched.push(id)
    else if (found[crate]) die(`two function resources for crate ${crate}: ${found[crate]} and ${id}`)
    else found[crate] = id
  }
  return { found, unmatched }
}

function fill(s, vars, fnEnv, fn) {
  return String(s).replace(/\$\{([^}]+)\}/g, (whole, key) => {
    if (key.startsWith('env:')) {
      const name = key.slice(4)
      if (!(name in fnEnv)) throw new MissingEnv(name)
      return fnEnv[name]
    }
    if (key.startsWith('secretArn:')) {
      // A Secrets Manager reference may end in :KEY (a JSON key the
      // function takes); IAM authorizes the secret's ARN without it.
      const name = key.slice(10)
      if (!(name in fnEnv)) throw new MissingEnv(name)
      return String(fnEnv[name]).split(':').slice(0, 7).join(':')
    }
    if (key.startsWith('queueArn:')) {
      const name = key.slice(9)
      if (!(name in fnEnv)) throw new MissingEnv(name)
      return queueArn(fnEnv[name])
    }
    if (key === 'polledQueue') {
      if (!fn.polled.length) throw new Error('the function has no SQS event source in the template')
      return fn.polled[0]
    }
    if (key === 'functionName') return fn.name
    if (key === 'logGroup') return fn.logGroup
    if (!(key in vars)) throw new Error(`unknown placeholder \${${key}}`)
    return fill(vars[key], vars, fnEnv, fn)
  })
}

class MissingEnv extends Error {
  constructor(name) {
    super(`environment variable ${name} not set`)
    this.variable = name
  }
}

function queueArn(url) {
  const m = /^https?:\/\/sqs\.([^.]+)\.amazonaws\.com[^/]*\/(\d{12})\/(.+)$/.exec(String(url))
  if (!m) throw new Error(`${url} is not an SQS queue URL`)
  return `arn:aws:sqs:${m[1]}:${m[2]}:${m[3]}`
}

function fillDeep(v, vars, fnEnv, fn) {
  if (Array.isArray(v)) return v.map((x) => fillDeep(x, vars, fnEnv, fn))
  if (v && typeof v === 'object') {
    const out = {}
    for (const [k, x] of Object.entries(v)) out[fill(k, vars, fnEnv, fn)] = fillDeep(x, vars, fnEnv, fn)
    return out
  }
  return typeof v === 'string' ? fill(v, vars, fnEnv, fn) : v
}

// The request context of one case: defaults every signed call carries,
// then the case's tags and keys.
function contextOf(c, ex, tagSets, roleArn) {
  const now = new Date('2025-06-01T12:00:00Z')
  const ctx = {
    'aws:RequestedRegion': ex.region,
    'aws:PrincipalAccount': ex.account,
    'aws:PrincipalArn': roleArn,
    'aws:SecureTransport': 'true',
    'aws:ViaAWSService': 'false',
    'aws:CurrentTime': now.toISOString(),
    'aws:EpochTime': String(now.getTime() / 1000),
  }
  const service = c.action.split(':')[0]
  if (service === 'ec2') ctx['ec2:Region'] = ex.region
  const checked = new Set()
  const tags = (t) => (typeof t === 'string' ? (tagSets[t] ?? die(`unknown tag set ${t}`)) : t ?? {})
  const requestTags = Object.assign({}, ...[].concat(c.requestTags ?? []).map(tags))
  const resourceTags = Object.assign({}, ...[].concat(c.resourceTags ?? []).map(tags))
  if (Object.keys(requestTags).length) {
    for (const [k, v] of Object.entries(requestTags)) {
      ctx[`aws:RequestTag/${k}`] = String(v)
      checked.add(`aws:RequestTag/${k}`)
    }
    ctx['aws:TagKeys'] = Object.keys(requestTags)
    checked.add('aws:TagKeys')
  }
  for (const [k, v] of Object.entries(resourceTags)) {
    ctx[`aws:ResourceTag/${k}`] = String(v)
    checked.add(`aws:ResourceTag/${k}`)
    // The service's own alias of the key, where it has one.
    if (service === 'ec2' || service === 'autoscaling') ctx[`${service}:ResourceTag/${k}`] = String(v)
  }
  for (const [k, v] of Object.entries(c.context ?? {})) {
    ctx[k] = Array.isArray(v) ? v.map(String) : String(v)
    checked.add(k)
  }
  return { ctx, checked }
}

function statementsOf(policies) {
  return policies.flatMap((p) => [].concat(p.policy.Statement ?? []).map((s) => ({ ...s, _policy: p.name })))
}

// Static rules of the issue: no `*` action, no NotAction/NotResource in an
// Allow.
function staticFindings(policies) {
  const out = []
  for (const s of statementsOf(policies)) {
    if (s.Effect !== 'Allow') continue
    if (s._policy.startsWith('aws-managed:')) continue
    const where = `${s._policy}${s.Sid ? ` (Sid ${s.Sid})` : ''}`
    for (const a of [].concat(s.Action ?? [])) {
      if (a === '*' || /^[a-z0-9-]+:\*$/i.test(a)) out.push(`${where}: Allow of action ${a}`)
    }
    if (s.NotAction) out.push(`${where}: Allow with NotAction`)
    if (s.NotResource) out.push(`${where}: Allow with NotResource`)
  }
  return out
}

function sidOf(s) {
  return s.statement?.Sid ?? s.explain?.identifier ?? '?'
}

function describeDecision(result) {
  const a = result?.result?.analysis ?? result?.results?.[0]?.analysis
  if (!a) return ''
  const ids = (xs) => (xs ?? []).map((s) => `${s.policyId}#${sidOf(s)}`)
  const allow = ids(a.identityAnalysis?.allowStatements)
  const deny = ids(a.identityAnalysis?.denyStatements)
  const parts = []
  if (allow.length) parts.push(`allowed by ${allow.join(', ')}`)
  if (deny.length) parts.push(`denied by ${deny.join(', ')}`)
  if (!allow.length && !deny.length) parts.push('no statement matches')
  if (a.permissionBoundaryAnalysis && a.permissionBoundaryAnalysis.result && a.permissionBoundaryAnalysis.result !== 'Allowed') {
    parts.push(`permissions boundary: ${a.permissionBoundaryAnalysis.result}`)
  }
  return parts.join('; ')
}

function nearMisses(result, ctx) {
  // Statements that name the action but did not match: why (resource or
  // condition), to tell a policy gap from a case that is wrong.
  const a = result?.result?.analysis ?? result?.results?.[0]?.analysis
  const un = a?.identityAnalysis?.unmatchedStatements ?? []
  return un
    .filter((s) => s.actionMatch)
    .map((s) => {
      const e = s.explain ?? {}
      const why = []
      if (!s.resourceMatch) why.push('resource does not match')
      if (s.conditionMatch !== 'Match' && s.conditionMatch !== true) {
        const conds = [].concat(e.conditions ?? []).filter((c) => !c.matches)
        why.push(
          'condition fails: ' +
            conds
              .map((c) => {
                const key = Object.keys(ctx).find((k) => k.toLowerCase() === String(c.conditionKeyValue).toLowerCase())
                return `${c.operator} ${c.conditionKeyValue} (request: ${key ? JSON.stringify(ctx[key]) : 'absent'})`
              })
              .join(', '),
        )
      }
      return `${s.policyId}#${sidOf(s)}: ${why.join('; ')}`
    })
}

async function main() {
  const opt = args()
  if (!existsSync(opt.template)) die(`no template at ${opt.template} (pass --template)`)
  let template, spec
  try {
    template = parseTemplate(readFileSync(opt.template, 'utf8'))
  } catch (e) {
    die(`cannot read ${opt.template}: ${e.message}`)
  }
  try {
    spec = yaml.load(readFileSync(opt.cases, 'utf8'))
  } catch (e) {
    die(`cannot read ${opt.cases}: ${e.message}`)
  }
  const ex = spec.examples
  const crates = readdirSync(join(repo, 'functions')).filter((d) => statSync(join(repo, 'functions', d)).isDirectory())
  const totals = { passed: 0, failed: 0, skipped: 0, problems: 0 }
  // The cases run once per parameter set: the template's conditions (a VPC,
  // optional alarms) change what the roles hold.
  const sets = spec.parameterSets?.length ? spec.parameterSets : [{ name: 'default', parameters: {} }]
  for (const set of sets) {
    console.log(`\n== parameter set ${set.name}${Object.keys(set.parameters ?? {}).length ? `: ${JSON.stringify(set.parameters)}` : ''}`)
    const params = { ...(ex.parameters ?? {}), ...(set.parameters ?? {}) }
    await runSet(opt, spec, template, { ...ex, parameters: params }, crates, totals)
  }
  console.log(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped, ${totals.problems} error(s)`)
  process.exit(totals.failed || totals.problems ? 1 : 0)
}

// A KMS key is usable only as its key policy allows. The default key
// policy delegates to IAM (the account may do everything), so the role's
// own policy is what decides: that is the key the template's
// CredentialsKmsKeyArn is documented to be (infra/README.md).
function keyPolicy(action, account) {
  if (!action.startsWith('kms:')) return undefined
  return {
    Version: '2012-10-17',
    Statement: [{ Sid: 'EnableIAMPolicies', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${account}:root` }, Action: 'kms:*', Resource: '*' }],
  }
}

async function simulate(policies, boundary, principal, action, resource, account, ctx) {
  return runSimulation(
    {
      identityPolicies: policies,
      permissionBoundaryPolicies: boundary.length ? boundary : undefined,
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      resourcePolicy: keyPolicy(action, account),
      request: { principal, action, resource: { resource, accountId: account }, contextVariables: ctx },
    },
    {},
  )
}

function ignoredOf(r, checked) {
  const keys = r.result?.ignoredContextKeys ?? r.results?.flatMap((x) => x.ignoredContextKeys ?? []) ?? []
  return [...new Set(keys.filter((k) => checked.has(k)))]
}

async function runSet(opt, spec, template, ex, crates, totals) {
  const rv = new Resolver(template, ex)
  const vars = { region: ex.region, account: ex.account, partition: ex.partition ?? 'aws', ...(spec.vars ?? {}) }
  const { found, unmatched } = functionResources(rv, crates)

  const failures = []
  const problems = []
  const warnings = []
  let passed = 0
  let skipped = 0
  if (rv.missingParams.length) {
    warnings.push(`template parameters without a Default and without an example value in cases.yaml (used EXAMPLE-<name>): ${rv.missingParams.join(', ')}`)
  }
  for (const id of unmatched) warnings.push(`function resource ${id} matches no crate in functions/`)
  for (const c of crates) {
    if (!spec.functions?.[c]) problems.push(`crate ${c} has no cases in cases.yaml`)
  }

  const common = spec.common ?? { allow: [], deny: [] }
  for (const [crate, cases] of Object.entries(spec.functions ?? {})) {
    if (opt.only && crate !== opt.only) continue
    const id = found[crate]
    if (!id) {
      problems.push(`crate ${crate}: no function resource in the template`)
      continue
    }
    let roles
    try {
      roles = rolePolicies(rv, id)
    } catch (e) {
      problems.push(`${crate} (${id}): ${e.message}`)
      continue
    }
    const fnEnv = environment(rv, rv.resource(id))
    const fn = { name: rv.attrs(id).Ref, polled: polledQueues(rv, id), logGroup: logGroup(rv, id) }
    const roleArn = `arn:aws:iam::${ex.account}:role/${roles.roleName}`
    const principal = `arn:aws:sts::${ex.account}:assumed-role/${roles.roleName}/${fn.name}`
    let fnFailed = 0
    for (const s of staticFindings(roles.policies)) {
      failures.push({ crate, line: `${crate} static: ${s}` })
      fnFailed++
    }

    const all = [
      ...(cases.allow ?? []).map((c) => ({ ...c, expect: 'allow' })),
      ...(common.allow ?? []).map((c) => ({ ...c, expect: 'allow', common: true })),
      ...(cases.deny ?? []).map((c) => ({ ...c, expect: 'deny' })),
      ...(common.deny ?? []).map((c) => ({ ...c, expect: 'deny', common: true })),
    ]
    const exercised = new Set()
    let fnPassed = 0
    let fnSkipped = 0
    for (const c of all) {
      const label = `${crate} ${c.expect} ${c.id}`
      let resource, context
      try {
        for (const v of [].concat(c.requires_env ?? [])) {
          // NAME, or NAME=~REGEX: set, and (when a pattern is given) matching it.
          const [name, pattern] = v.split('=~')
          if (!(name in fnEnv) || (pattern !== undefined && !new RegExp(pattern).test(String(fnEnv[name])))) {
            throw new MissingEnv(v)
          }
        }
        for (const p of [].concat(c.requires_parameter ?? [])) {
          if (!ex.parameters?.[p]) throw new MissingEnv(`parameter ${p}`)
        }
        resource = fill(c.resource, vars, fnEnv, fn)
        const filled = fillDeep({ context: c.context, requestTags: c.requestTags, resourceTags: c.resourceTags }, vars, fnEnv, fn)
        context = contextOf({ ...c, ...filled }, ex, spec.tagSets ?? {}, roleArn)
      } catch (e) {
        if (e instanceof MissingEnv && (c.requires_env !== undefined || c.requires_parameter !== undefined)) {
          fnSkipped++
          warnings.push(`${label}: skipped, the template does not set ${e.variable} for ${id} (the function then makes no such call)`)
          continue
        }
        failures.push({ crate, line: `${label}: cannot build the request: ${e.message}${c.code ? `\n    code:     ${c.code}` : ''}` })
        fnFailed++
        continue
      }
      const r = await simulate(roles.policies, roles.boundary, principal, c.action, resource, ex.account, context.ctx)
      let got
      let note = ''
      if (r.resultType === 'error') {
        got = `error: ${r.errors.message}`
        const detail = JSON.stringify({ ...r.errors, message: undefined })
        if (detail !== '{}') note = detail
      } else {
        got = r.overallResult
        const ignored = ignoredOf(r, context.checked)
        if (ignored.length) got = `case error: ${ignored.join(', ')} do(es) not apply to ${c.action} on this resource type`
      }
      // A deny case must be one some policy could allow: a request IAM
      // would refuse whatever the policy (a malformed ARN, a key the action
      // does not have) would pass for the wrong reason.
      if (c.expect === 'deny' && got !== 'Allowed' && !got.startsWith('case error') && !got.startsWith('error')) {
        const open = [{ name: 'reachability', policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: c.action, Resource: '*' }] } }]
        const probe = await simulate(open, [], principal, c.action, resource, ex.account, context.ctx)
        if (probe.resultType === 'error') got = `case error: the request is invalid (${probe.errors.message})`
        else if (probe.overallResult !== 'Allowed') got = `case error: not allowed even by Allow ${c.action} on * (${probe.overallResult})`
      }
      const ok = c.expect === 'allow' ? got === 'Allowed' : got === 'ImplicitlyDenied' || got === 'ExplicitlyDenied'
      if (c.expect === 'allow' && got === 'Allowed') exercised.add(c.action.toLowerCase())
      if (ok) {
        fnPassed++
        if (opt.verbose) console.log(`ok   ${label}: ${c.action} ${resource} -> ${got}`)
      } else {
        fnFailed++
        const lines = [
          `${label}${c.common ? ' (common)' : ''}`,
          `    action:   ${c.action}`,
          `    resource: ${resource}`,
          `    expected: ${c.expect === 'allow' ? 'Allowed' : 'denied'}, got: ${got}`,
        ]
        if (c.code) lines.push(`    code:     ${String(c.code).trim().replace(/\s+/g, ' ')}`)
        if (c.why) lines.push(`    why:      ${String(c.why).trim().replace(/\s+/g, ' ')}`)
        if (r.resultType !== 'error') {
          lines.push(`    decision: ${describeDecision(r)}`)
          if (c.expect === 'allow') for (const m of nearMisses(r, context.ctx)) lines.push(`    near miss: ${m}`)
        } else if (note) lines.push(`    detail:   ${note}`)
        if (opt.explain) lines.push(`    context:  ${JSON.stringify(context.ctx)}`)
        failures.push({ crate, line: lines.join('\n') })
      }
    }
    // Exact actions the role allows that no allow case exercised.
    const tolerated = new Map([].concat(cases.tolerated ?? []).map((t) => [t.action.toLowerCase(), t.why]))
    const unused = new Set()
    for (const s of statementsOf(roles.policies)) {
      if (s.Effect !== 'Allow' || s._policy.startsWith('aws-managed:')) continue
      for (const a of [].concat(s.Action ?? [])) {
        if (!a.includes('*') && !exercised.has(a.toLowerCase()) && !tolerated.has(a.toLowerCase())) unused.add(a)
      }
    }
    if (unused.size) warnings.push(`${crate}: the role allows ${[...unused].join(', ')}, which no allow case exercises (excess privilege, or a call missing from cases.yaml)`)
    passed += fnPassed
    skipped += fnSkipped
    console.log(`${fnFailed ? 'FAIL' : 'ok  '} ${crate} (${id}; ${roles.notes.join(', ')}; policies: ${roles.policies.map((p) => p.name).join(', ')}): ${fnPassed} passed, ${fnFailed} failed, ${fnSkipped} skipped`)
  }

  for (const w of warnings) console.log(`warning: ${w}`)
  for (const p of problems) console.log(`ERROR: ${p}`)
  if (failures.length) {
    console.log(`\n${failures.length} failing case(s):`)
    for (const f of failures) console.log(`- ${f.line}`)
  }
  totals.passed += passed
  totals.failed += failures.length
  totals.skipped += skipped
  totals.problems += problems.length
}

main().catch((e) => die(e.stack ?? String(e)))
