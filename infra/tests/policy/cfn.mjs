// CloudFormation / SAM template reading for the policy tests: YAML with the
// short intrinsic tags, intrinsic functions resolved to example values, and
// each function's effective identity policies (what its execution role
// holds once SAM has expanded the function).
//
// Only what a policy evaluation needs is modelled. Anything the resolver
// does not know is an error naming the construct, never a silent guess.

import yaml from 'js-yaml'

// ---------------------------------------------------------------- YAML

const INTRINSICS = [
  'Base64', 'Cidr', 'FindInMap', 'GetAZs', 'ImportValue', 'Join', 'Select', 'Split', 'Sub',
  'Transform', 'And', 'Equals', 'If', 'Not', 'Or', 'ToJsonString', 'Length', 'ForEach', 'Contains',
  'EachMemberEquals', 'EachMemberIn', 'RefAll', 'ValueOf', 'ValueOfAll',
]

function cfnTypes() {
  const types = []
  for (const kind of ['scalar', 'sequence', 'mapping']) {
    types.push(new yaml.Type('!Ref', { kind, construct: (d) => ({ Ref: d }) }))
    types.push(new yaml.Type('!Condition', { kind, construct: (d) => ({ Condition: d }) }))
    types.push(
      new yaml.Type('!GetAtt', {
        kind,
        construct: (d) => {
          if (typeof d === 'string') {
            const dot = d.indexOf('.')
            return { 'Fn::GetAtt': [d.slice(0, dot), d.slice(dot + 1)] }
          }
          return { 'Fn::GetAtt': d }
        },
      }),
    )
    for (const name of INTRINSICS) {
      types.push(new yaml.Type(`!${name}`, { kind, construct: (d) => ({ [`Fn::${name}`]: d }) }))
    }
  }
  return yaml.DEFAULT_SCHEMA.extend(types)
}

export function parseTemplate(text) {
  return yaml.load(text, { schema: cfnTypes() })
}

// ---------------------------------------------------------------- resolution

const NO_VALUE = Symbol('AWS::NoValue')

export class Resolver {
  constructor(template, examples) {
    this.t = template
    this.account = examples.account
    this.region = examples.region
    this.partition = examples.partition ?? 'aws'
    this.stack = examples.stackName
    this.exampleParams = examples.parameters ?? {}
    this.params = {}
    this.missingParams = []
    for (const [name, p] of Object.entries(template.Parameters ?? {})) {
      let v = name in this.exampleParams ? this.exampleParams[name] : p.Default
      if (v === undefined) {
        this.missingParams.push(name)
        v = `EXAMPLE-${name}`
      }
      if (String(p.Type ?? '').startsWith('List<') || p.Type === 'CommaDelimitedList') {
        v = Array.isArray(v) ? v.map(String) : String(v).split(',').map((s) => s.trim())
      } else {
        v = String(v)
      }
      this.params[name] = v
    }
    this.conditionCache = {}
    this.resolving = new Set()
  }

  pseudo(name) {
    switch (name) {
      case 'AWS::AccountId': return this.account
      case 'AWS::Region': return this.region
      case 'AWS::Partition': return this.partition
      case 'AWS::StackName': return this.stack
      case 'AWS::StackId': return `arn:${this.partition}:cloudformation:${this.region}:${this.account}:stack/${this.stack}/00000000-0000-0000-0000-000000000000`
      case 'AWS::URLSuffix': return 'amazonaws.com'
      case 'AWS::NoValue': return NO_VALUE
      case 'AWS::NotificationARNs': return []
      default: throw new Error(`unknown pseudo parameter ${name}`)
    }
  }

  condition(name) {
    if (name in this.conditionCache) return this.conditionCache[name]
    const expr = (this.t.Conditions ?? {})[name]
    if (expr === undefined) throw new Error(`unknown condition ${name}`)
    const v = this.evalCondition(expr)
    this.conditionCache[name] = v
    return v
  }

  evalCondition(e) {
    if (e && typeof e === 'object' && !Array.isArray(e)) {
      if ('Condition' in e) return this.condition(e.Condition)
      if ('Fn::Equals' in e) {
        const [a, b] = e['Fn::Equals'].map((x) => this.value(x))
        return JSON.stringify(a) === JSON.stringify(b)
      }
      if ('Fn::Not' in e) return !this.evalCondition(e['Fn::Not'][0])
      if ('Fn::And' in e) return e['Fn::And'].every((x) => this.evalCondition(x))
      if ('Fn::Or' in e) return e['Fn::Or'].some((x) => this.evalCondition(x))
    }
    throw new Error(`cannot evaluate condition ${JSON.stringify(e)}`)
  }

  // The physical name CloudFormation would generate for a resource without one.
  generatedName(id, suffix = '') {
    return `${this.stack}-${id}-EXAMPLE${suffix}`
  }

  resource(id) {
    const r = (this.t.Resources ?? {})[id]
    if (!r) throw new Error(`!Ref/!GetAtt of unknown resource or parameter ${id}`)
    return r
  }

  prop(r, name) {
    const p = r.Properties ?? {}
    if (p[name] === undefined) return undefined
    const v = this.value(p[name])
    return v === NO_VALUE ? undefined : v
  }

  // What Ref and GetAtt return for a resource, by type.
  attrs(id) {
    const key = `attrs:${id}`
    if (this.resolving.has(key)) throw new Error(`circular reference through ${id}`)
    this.resolving.add(key)
    try {
      return this.attrsOf(id, this.resource(id))
    } finally {
      this.resolving.delete(key)
    }
  }

  attrsOf(id, r) {
    const { partition: P, region: R, account: A } = this
    switch (r.Type) {
      case 'AWS::SNS::Topic': {
        const fifo = this.prop(r, 'FifoTopic') === true || this.prop(r, 'FifoTopic') === 'true'
        const name = this.prop(r, 'TopicName') ?? this.generatedName(id, fifo ? '.fifo' : '')
        const arn = `arn:${P}:sns:${R}:${A}:${name}`
        return { Ref: arn, TopicArn: arn, TopicName: name }
      }
      case 'AWS::SQS::Queue': {
        const fifo = this.prop(r, 'FifoQueue') === true || this.prop(r, 'FifoQueue') === 'true'
        const name = this.prop(r, 'QueueName') ?? this.generatedName(id, fifo ? '.fifo' : '')
        const url = `https://sqs.${R}.amazonaws.com/${A}/${name}`
        return { Ref: url, QueueUrl: url, QueueName: name, Arn: `arn:${P}:sqs:${R}:${A}:${name}` }
      }
      case 'AWS::Serverless::Function':
      case 'AWS::Lambda::Function': {
        const name = this.prop(r, 'FunctionName') ?? this.generatedName(id)
        return { Ref: name, Arn: `arn:${P}:lambda:${R}:${A}:function:${name}` }
      }
      case 'AWS::IAM::Role': {
        const name = this.prop(r, 'RoleName') ?? this.generatedName(id)
        const path = this.prop(r, 'Path') ?? '/'
        return { Ref: name, Arn: `arn:${P}:iam::${A}:role${path}${name}`, RoleId: `AROAEXAMPLE${id.toUpperCase()}` }
      }
      case 'AWS::IAM::ManagedPolicy': {
        const name = this.prop(r, 'ManagedPolicyName') ?? this.generatedName(id)
        const arn = `arn:${P}:iam::${A}:policy${this.prop(r, 'Path') ?? '/'}${name}`
        return { Ref: arn, PolicyArn: arn }
      }
      case 'AWS::Route53::HostedZone':
        return { Ref: 'ZEXAMPLEHOSTEDZONE01', Id: 'ZEXAMPLEHOSTEDZONE01', NameServers: [] }
      case 'AWS::Events::Rule': {
        const name = this.prop(r, 'Name') ?? this.generatedName(id)
        return { Ref: name, Arn: `arn:${P}:events:${R}:${A}:rule/${name}` }
      }
      case 'AWS::Scheduler::Schedule': {
        const name = this.prop(r, 'Name') ?? this.generatedName(id)
        return { Ref: name, Arn: `arn:${P}:scheduler:${R}:${A}:schedule/default/${name}` }
      }
      case 'AWS::Logs::LogGroup': {
        const name = this.prop(r, 'LogGroupName') ?? this.generatedName(id)
        return { Ref: name, Arn: `arn:${P}:logs:${R}:${A}:log-group:${name}:*` }
      }
      case 'AWS::CloudWatch::Alarm': {
        const name = this.prop(r, 'AlarmName') ?? this.generatedName(id)
        return { Ref: name, Arn: `arn:${P}:cloudwatch:${R}:${A}:alarm:${name}` }
      }
      case 'AWS::KMS::Key':
        return { Ref: '11111111-2222-3333-4444-555555555555', KeyId: '11111111-2222-3333-4444-555555555555', Arn: `arn:${P}:kms:${R}:${A}:key/11111111-2222-3333-4444-555555555555` }
      default:
        return { Ref: this.generatedName(id), Arn: `arn:${P}:unknown:${R}:${A}:${id}` }
    }
  }

  ref(name) {
    if (name.startsWith('AWS::')) return this.pseudo(name)
    if (name in this.params) return this.params[name]
    return this.attrs(name).Ref
  }

  getAtt(id, attr) {
    const a = this.attrs(id)
    if (!(attr in a)) throw new Error(`!GetAtt ${id}.${attr}: attribute not modelled for ${this.resource(id).Type}`)
    return a[attr]
  }

  sub(template, vars = {}) {
    return template.replace(/\$\{([^}]+)\}/g, (whole, inner) => {
      if (inner.startsWith('!')) return '${' + inner.slice(1) + '}'
      const name = inner.trim()
      if (name in vars) return String(this.value(vars[name]))
      if (name.includes('.') && !name.startsWith('AWS::')) {
        const dot = name.indexOf('.')
        return String(this.getAtt(name.slice(0, dot), name.slice(dot + 1)))
      }
      const v = this.ref(name)
      if (Array.isArray(v)) throw new Error(`!Sub of list parameter ${name}`)
      return String(v)
    })
  }

  // Resolve every intrinsic in `v` to a plain value.
  value(v) {
    if (Array.isArray(v)) return v.map((x) => this.value(x)).filter((x) => x !== NO_VALUE)
    if (v === null || typeof v !== 'object') return v
    const keys = Object.keys(v)
    if (keys.length === 1) {
      const [k] = keys
      const a = v[k]
      switch (k) {
        case 'Ref': return this.ref(a)
        case 'Fn::GetAtt': {
          const [id, attr] = Array.isArray(a) ? a : [a.slice(0, a.indexOf('.')), a.slice(a.indexOf('.') + 1)]
          return this.getAtt(this.value(id), this.value(attr))
        }
        case 'Fn::Sub':
          return typeof a === 'string' ? this.sub(a) : this.sub(this.value(a[0]), a[1] ?? {})
        case 'Fn::Join': {
          const list = this.value(a[1])
          return list.map(String).join(a[0])
        }
        case 'Fn::Select': return this.value(a[1])[Number(this.value(a[0]))]
        case 'Fn::Split': return String(this.value(a[1])).split(a[0])
        case 'Fn::If': return this.condition(a[0]) ? this.value(a[1]) : this.value(a[2])
        case 'Fn::FindInMap': {
          const [m, k1, k2] = a.map((x) => this.value(x))
          const found = this.t.Mappings?.[m]?.[k1]?.[k2]
          if (found === undefined) throw new Error(`Fn::FindInMap ${m}.${k1}.${k2} not found`)
          return this.value(found)
        }
        case 'Fn::ImportValue': return `IMPORTED-${this.value(a)}`
        case 'Fn::GetAZs': return [`${this.region}a`, `${this.region}b`, `${this.region}c`]
        case 'Fn::Base64': return this.value(a)
        case 'Fn::ToJsonString': return JSON.stringify(this.value(a))
        case 'Fn::Length': return this.value(a).length
        case 'Fn::Equals': case 'Fn::Not': case 'Fn::And': case 'Fn::Or':
          return this.evalCondition(v)
        case 'Condition':
          if (typeof a === 'string' && this.t.Conditions && a in this.t.Conditions) return this.condition(a)
          break
        default:
          if (k.startsWith('Fn::')) throw new Error(`intrinsic ${k} not supported by the policy tests`)
      }
    }
    const out = {}
    for (const [k, x] of Object.entries(v)) {
      const r = this.value(x)
      if (r !== NO_VALUE) out[k] = r
    }
    return out
  }

  // Whether a resource exists in the stack with the example parameters.
  exists(r) {
    return r.Condition === undefined || this.condition(r.Condition)
  }
}

// ---------------------------------------------------------------- policies

// AWS managed policies the functions may carry, with their documents as AWS
// publishes them (Lambda's execution-role policies). Anything else is an
// error: an unknown managed policy cannot be evaluated.
const LOGS = ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents']
export const MANAGED = {
  AWSLambdaBasicExecutionRole: [{ Effect: 'Allow', Action: LOGS, Resource: '*' }],
  AWSLambdaVPCAccessExecutionRole: [
    { Effect: 'Allow', Action: LOGS, Resource: '*' },
    {
      Effect: 'Allow',
      Action: [
        'ec2:CreateNetworkInterface', 'ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets',
        'ec2:DeleteNetworkInterface', 'ec2:AssignPrivateIpAddresses', 'ec2:UnassignPrivateIpAddresses',
      ],
      Resource: '*',
    },
  ],
  AWSLambdaSQSQueueExecutionRole: [
    { Effect: 'Allow', Action: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes', ...LOGS], Resource: '*' },
  ],
  AWSXRayDaemonWriteAccess: [
    {
      Effect: 'Allow',
      Action: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords', 'xray:GetSamplingRules', 'xray:GetSamplingTargets', 'xray:GetSamplingStatisticSummaries'],
      Resource: '*',
    },
  ],
}

function managedName(arnOrName) {
  const s = String(arnOrName)
  return s.includes(':policy/') ? s.slice(s.lastIndexOf('/') + 1) : s
}

// SAM policy templates (samtranslator/policy_templates_data/policy_templates.json),
// only those a ninelives function could use. An unknown one is an error.
function samTemplate(name, params, rv) {
  const { partition: P, region: R, account: A } = rv
  const q = (n) => `arn:${P}:sqs:${R}:${A}:${n}`
  switch (name) {
    case 'SNSPublishMessagePolicy':
      return [{ Effect: 'Allow', Action: ['sns:Publish'], Resource: `arn:${P}:sns:${R}:${A}:${params.TopicName}` }]
    case 'SQSSendMessagePolicy':
      return [{ Effect: 'Allow', Action: ['sqs:SendMessage*'], Resource: q(params.QueueName) }]
    case 'SQSPollerPolicy':
      return [{
        Effect: 'Allow',
        Action: ['sqs:ChangeMessageVisibility', 'sqs:ChangeMessageVisibilityBatch', 'sqs:DeleteMessage', 'sqs:DeleteMessageBatch', 'sqs:GetQueueAttributes', 'sqs:ReceiveMessage'],
        Resource: q(params.QueueName),
      }]
    case 'EC2DescribePolicy':
      return [{ Effect: 'Allow', Action: ['ec2:DescribeRegions', 'ec2:DescribeInstances'], Resource: '*' }]
    case 'CloudWatchPutMetricPolicy':
      return [{ Effect: 'Allow', Action: ['cloudwatch:PutMetricData'], Resource: '*' }]
    default:
      throw new Error(`SAM policy template ${name} is not modelled in infra/tests/policy/cfn.mjs: add its expansion`)
  }
}

function doc(name, statements) {
  return { name, policy: { Version: '2012-10-17', Statement: statements } }
}

function asList(x) {
  return x === undefined ? [] : Array.isArray(x) ? x : [x]
}

function managedDoc(rv, ref, where) {
  const name = managedName(ref)
  if (name in MANAGED) return doc(`aws-managed:${name}`, MANAGED[name])
  // A customer managed policy of this template.
  for (const [id, r] of Object.entries(rv.t.Resources ?? {})) {
    if (r.Type === 'AWS::IAM::ManagedPolicy' && rv.exists(r) && rv.attrs(id).Ref === ref) {
      return doc(`managed:${id}`, asList(rv.prop(r, 'PolicyDocument').Statement))
    }
  }
  throw new Error(`${where}: managed policy ${ref} is not modelled (add it to MANAGED in cfn.mjs)`)
}

// Properties of a function with the template's Globals.Function merged in.
function functionProps(rv, r) {
  const globals = r.Type === 'AWS::Serverless::Function' ? rv.t.Globals?.Function ?? {} : {}
  const own = r.Properties ?? {}
  const merged = { ...globals, ...own }
  if (globals.Environment?.Variables && own.Environment?.Variables) {
    merged.Environment = { Variables: { ...globals.Environment.Variables, ...own.Environment.Variables } }
  }
  return merged
}

// The log group the function writes to: LoggingConfig.LogGroup, else
// Lambda's default /aws/lambda/<name>.
export function logGroup(rv, id) {
  const lc = functionProps(rv, rv.resource(id)).LoggingConfig
  const own = (rv.resource(id).Properties ?? {}).LoggingConfig?.LogGroup
  if (own !== undefined) return rv.value(own)
  if (lc?.LogGroup !== undefined) return rv.value(lc.LogGroup)
  return `/aws/lambda/${rv.attrs(id).Ref}`
}

export function environment(rv, r) {
  return rv.value(functionProps(rv, r).Environment?.Variables ?? {})
}

// The identity policies and permissions boundary a function's role holds,
// and notes on where each came from.
export function rolePolicies(rv, id) {
  const r = rv.resource(id)
  const props = functionProps(rv, r)
  const policies = []
  const boundary = []
  const notes = []
  const roleRef = props.Role === undefined ? undefined : rv.value(props.Role)

  if (roleRef !== undefined) {
    // An explicit role: find the AWS::IAM::Role whose Arn it is.
    const found = Object.entries(rv.t.Resources ?? {}).find(
      ([rid, x]) => x.Type === 'AWS::IAM::Role' && rv.exists(x) && rv.attrs(rid).Arn === roleRef,
    )
    if (!found) throw new Error(`${id}: Role ${roleRef} is not an AWS::IAM::Role of this template`)
    const [roleId, role] = found
    notes.push(`role ${roleId}`)
    for (const p of asList(rv.prop(role, 'Policies'))) {
      policies.push(doc(`${roleId}/${p.PolicyName}`, asList(p.PolicyDocument.Statement)))
    }
    for (const arn of asList(rv.prop(role, 'ManagedPolicyArns'))) policies.push(managedDoc(rv, arn, roleId))
    const pb = rv.prop(role, 'PermissionsBoundary')
    if (pb !== undefined) boundary.push(managedDoc(rv, pb, `${roleId} PermissionsBoundary`))
    // Stand-alone policies attached to the role.
    const roleName = rv.attrs(roleId).Ref
    for (const [pid, x] of Object.entries(rv.t.Resources ?? {})) {
      if (!rv.exists(x)) continue
      if (x.Type === 'AWS::IAM::Policy' || x.Type === 'AWS::IAM::RolePolicy' || x.Type === 'AWS::IAM::ManagedPolicy') {
        const roles = x.Type === 'AWS::IAM::RolePolicy' ? [rv.prop(x, 'RoleName')] : asList(rv.prop(x, 'Roles'))
        if (roles.includes(roleName)) {
          policies.push(doc(`${pid}`, asList(rv.prop(x, 'PolicyDocument').Statement)))
          notes.push(`+ ${x.Type} ${pid}`)
        }
      }
    }
    return { policies, boundary, notes, roleName }
  }

  if (r.Type !== 'AWS::Serverless::Function') throw new Error(`${id}: an AWS::Lambda::Function needs a Role`)
  // SAM generates the role: AWSLambdaBasicExecutionRole, the Policies
  // property, and what its events, tracing, VPC and destinations imply.
  notes.push('SAM-generated role')
  policies.push(doc('aws-managed:AWSLambdaBasicExecutionRole', MANAGED.AWSLambdaBasicExecutionRole))
  let n = 0
  for (const p of asList(props.Policies)) {
    n += 1
    if (typeof p === 'string') {
      policies.push(managedDoc(rv, p, `${id} Policies`))
      continue
    }
    const keys = Object.keys(p)
    if (keys.length === 1 && (keys[0] === 'Ref' || keys[0].startsWith('Fn::'))) {
      policies.push(managedDoc(rv, rv.value(p), `${id} Policies`))
      continue
    }
    if ('Statement' in p) {
      policies.push(doc(`${id}/Policies[${n}]`, asList(rv.value(p).Statement)))
      continue
    }
    if (keys.length === 1) {
      const params = rv.value(p[keys[0]] ?? {})
      policies.push(doc(`${id}/${keys[0]}`, samTemplate(keys[0], params, rv)))
      continue
    }
    throw new Error(`${id}: cannot read Policies item ${JSON.stringify(p)}`)
  }
  if (props.Tracing !== undefined && rv.value(props.Tracing) === 'Active') {
    policies.push(doc('aws-managed:AWSXRayDaemonWriteAccess', MANAGED.AWSXRayDaemonWriteAccess))
  }
  if (vpc !== undefined && typeof vpc === 'object') {
    policies.push(doc('aws-managed:AWSLambdaVPCAccessExecutionRole', MANAGED.AWSLambdaVPCAccessExecutionRole))
  }
  for (const [eid, e] of Object.entries(props.Events ?? {})) {
    if (e.Type === 'SQS') {
      policies.push(doc(`aws-managed:AWSLambdaSQSQueueExecutionRole (event ${eid})`, MANAGED.AWSLambdaSQSQueueExecutionRole))
    } else if (['Kinesis', 'DynamoDB', 'MQ', 'MSK', 'SelfManagedKafka', 'DocumentDB'].includes(e.Type)) {
      throw new Error(`${id}: event ${eid} of type ${e.Type} implies policies not modelled here`)
    }
  }
  const dlq = props.DeadLetterQueue === undefined ? undefined : rv.value(props.DeadLetterQueue)
  const vpc = props.VpcConfig === undefined ? undefined : rv.value(props.VpcConfig)
  if (dlq) {
    const action = dlq.Type === 'SNS' ? 'sns:Publish' : 'sqs:SendMessage'
    policies.push(doc(`${id}/DeadLetterQueue (SAM)`, [{ Effect: 'Allow', Action: action, Resource: dlq.TargetArn }]))
  }
  const dest = props.EventInvokeConfig === undefined ? undefined : rv.value(props.EventInvokeConfig).DestinationConfig
  for (const [when, d] of Object.entries(dest ?? {})) {
    if (!d?.Destination) continue
    const action = { SQS: 'sqs:SendMessage', SNS: 'sns:Publish', Lambda: 'lambda:InvokeFunction', EventBridge: 'events:PutEvents' }[d.Type]
    if (!action) continue
    policies.push(doc(`${id}/EventInvokeConfig.${when} (SAM)`, [{ Effect: 'Allow', Action: action, Resource: d.Destination }]))
  }
  if (props.PermissionsBoundary !== undefined) {
    boundary.push(managedDoc(rv, rv.value(props.PermissionsBoundary), `${id} PermissionsBoundary`))
  }
  return { policies, boundary, notes, roleName: `${rv.stack}-${id}Role-EXAMPLE` }
}

// The queues a function's SQS event source mappings poll (SAM events or
// AWS::Lambda::EventSourceMapping resources naming it).
export function polledQueues(rv, id) {
  const out = []
  const props = functionProps(rv, rv.resource(id))
  for (const e of Object.values(props.Events ?? {})) {
    if (e.Type === 'SQS') out.push(rv.value(e.Properties.Queue))
  }
  const fnName = rv.attrs(id).Ref
  const fnArn = rv.attrs(id).Arn
  for (const x of Object.values(rv.t.Resources ?? {})) {
    if (x.Type !== 'AWS::Lambda::EventSourceMapping' || !rv.exists(x)) continue
    const target = rv.prop(x, 'FunctionName')
    const source = rv.prop(x, 'EventSourceArn')
    if ((target === fnName || target === fnArn) && String(source).includes(':sqs:')) out.push(source)
  }
  return out
}
