#!/usr/bin/env node
// Checks that the policy tests bite: weakens infra/template.yaml in a few
// known ways (in a temporary copy) and expects run.mjs to fail each time
// with the case that guards against it. A mutation whose text is no longer
// in the template is reported as not applicable, not as a failure.
//
//   node selftest.mjs [--template PATH]

import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawnSync } from 'node:child_process'

const here = dirname(fileURLToPath(import.meta.url))
const argv = process.argv.slice(2)
const template = argv[0] === '--template' ? resolve(argv[1]) : resolve(here, '../../template.yaml')
const text = readFileSync(template, 'utf8')

// [name, find (regex), replace, a case id the run must report]
const mutations = [
  ['snapshot delete without the managed-by condition',
    /(Action: ec2:DeleteSnapshot\n(\s+)Resource: [^\n]+\n)\s+Condition:\n\s+StringEquals:\n\s+aws:ResourceTag\/ninelives:managed-by: ninelives\n/, '$1', 'delete-foreign-snapshot'],
  ['snapshot ARNs with an account id (they have none)',
    /::snapshot\/\*/g, ':${AWS::AccountId}:snapshot/*', 'create-snapshot-snapshot'],
  ['Route 53 on every hosted zone',
    /hostedzone\/\$\{HostedZoneId\}/g, 'hostedzone/*', 'route53-other-zone'],
  ['snapshot tags without ec2:CreateAction',
    /\n\s+Condition:\n\s+StringEquals:\n\s+ec2:CreateAction: \[CreateSnapshot, CreateSnapshots\]/, '', 'adopt-foreign-snapshot'],
  ['Route 53 without CREATE (a compare-and-swap is DELETE + CREATE)',
    /route53:ChangeResourceRecordSetsActions: \[CREATE, UPSERT, DELETE\]/g, 'route53:ChangeResourceRecordSetsActions: [UPSERT, DELETE]', 'route53-head-claim'],
  ['metrics in any namespace',
    /\n\s+Condition:\n\s+StringEquals:\n\s+cloudwatch:namespace: \[[^\]]*\]/, '', 'put-metric-aws-namespace'],
  ['attach to any instance',
    /(Action: \[ec2:AttachVolume, ec2:ModifyInstanceAttribute\]\n\s+Resource: [^\n]*instance\/\*"\n)\s+Condition:\n\s+"Null":\n\s+aws:ResourceTag\/ninelives:cluster: "false"\n/, '$1', 'attach-to-foreign-instance'],
  ['a password parameter readable under any name below its path',
    /parameter\$\{RedisPasswordParameter\}"/, 'parameter${RedisPasswordParameter}*"', 'read-other-parameter'],
  ['the credentials key without kms:ViaService',
    /\n\s+Condition:\n\s+StringEquals:\n\s+kms:ViaService:\n\s+- [^\n]+\n\s+- [^\n]+/, '', 'decrypt-directly'],
]

const dir = mkdtempSync(join(tmpdir(), 'ninelives-policy-selftest-'))
let bad = 0
try {
  for (const [name, find, replace, expectCase] of mutations) {
    const mutated = text.replace(find, replace)
    if (mutated === text) {
      console.log(`n/a  ${name} (text not in the template)`)
      continue
    }
    const file = join(dir, 'template.yaml')
    writeFileSync(file, mutated)
    const run = spawnSync(process.execPath, [join(here, 'run.mjs'), '--template', file], { encoding: 'utf8' })
    const caught = run.status === 1 && run.stdout.includes(` ${expectCase}`)
    console.log(`${caught ? 'ok  ' : 'MISS'} ${name}: ${caught ? `caught by ${expectCase}` : `run.mjs exit ${run.status}, ${expectCase} not reported`}`)
    if (!caught) bad++
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
process.exit(bad ? 1 : 0)
