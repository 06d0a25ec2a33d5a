// Validates custom resources (prometheus-operator's ServiceMonitor, PodMonitor and
// PrometheusRule; KEDA's ScaledObject and TriggerAuthentication) with the @kubernetes-models
// packages, code that shares nothing with the chart, in two ways:
//
// - against the CRDs' OpenAPI schemas (types, required fields, patterns, enums);
// - against the same models' TypeScript types, whose excess-property check refuses unknown
//   fields at any depth (the CRD schemas accept them, as the API server would only prune
//   them: a misspelt field would silently do nothing).
//
// Input: a JSON array of objects on stdin. Output: one line per object; exits 1 when any
// object is invalid or of a kind this script does not know.
"use strict";

const path = require("path");
const ts = require("typescript");

// apiVersion -> kind -> the model's module (exporting class <Kind> and interface I<Kind>).
const MODELS = {
  "monitoring.coreos.com/v1": {
    ServiceMonitor: "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor",
    PodMonitor: "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor",
    PrometheusRule: "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule",
  },
  "keda.sh/v1alpha1": {
    ScaledObject: "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject",
    TriggerAuthentication: "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication",
  },
};

const describe = (object) =>
  `${object.apiVersion} ${object.kind} ${object.metadata && object.metadata.name}`;

/** Schema validation; returns the problems found. */
function validateSchemas(objects) {
  const problems = [];
  for (const object of objects) {
    const module = (MODELS[object.apiVersion] || {})[object.kind];
    if (!module) {
      problems.push(`UNKNOWN ${describe(object)}: no schema for this kind here`);
      continue;
    }
    const Model = require(module)[object.kind];
    try {
      new Model(object).validate();
    } catch (error) {
      problems.push(`INVALID ${describe(object)}: ${error.message}`);
    }
  }
  return problems;
}

/** Type-checks every object as a literal of its model's interface (one object per line). */
function checkFields(objects) {
  const kinds = [...new Set(objects.map((o) => (MODELS[o.apiVersion] || {})[o.kind]).filter(Boolean))];
  const lines = kinds.map((module, i) => {
    const kind = path.basename(module);
    return `import type { I${kind} as T${i} } from "${module}";`;
  });
  const first = lines.length;
  for (const [i, object] of objects.entries()) {
    const module = (MODELS[object.apiVersion] || {})[object.kind];
    const type = module ? `T${kinds.indexOf(module)}` : "unknown";
    lines.push(`export const object${i}: ${type} = ${JSON.stringify(object)};`);
  }
  // A virtual file beside node_modules, so that the packages resolve as usual.
  const file = path.join(__dirname, "rendered-custom-resources.ts");
  const source = lines.join("\n") + "\n";
  const options = {
    noEmit: true,
    strict: true,
    skipLibCheck: true,
    module: ts.ModuleKind.Node16,
    moduleResolution: ts.ModuleResolutionKind.Node16,
    target: ts.ScriptTarget.ES2022,
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, version, ...rest) =>
    name === file ? ts.createSourceFile(name, source, version) : getSourceFile(name, version, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || fileExists(name);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => (name === file ? source : readFile(name));
  const program = ts.createProgram([file], options, host);
  const problems = [];
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, " ");
    if (diagnostic.file && diagnostic.file.fileName === file) {
      const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
      const object = objects[line - first];
      problems.push(`TYPE ERROR ${object ? describe(object) : `line ${line}`}: ${message}`);
    } else {
      problems.push(`TYPESCRIPT ${message}`);
    }
  }
  return problems;
}

function main() {
  const objects = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const problems = [...validateSchemas(objects), ...checkFields(objects)];
  for (const object of objects) {
    if (!problems.some((p) => p.includes(describe(object)))) {
      console.log(`valid ${describe(object)}`);
    }
  }
  for (const problem of problems) {
    console.log(problem);
  }
  process.exit(problems.length === 0 ? 0 : 1);
}

main();
