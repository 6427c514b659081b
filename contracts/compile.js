#!/usr/bin/env node
// Compiles contracts/src/*.sol with the solc pinned in package.json and writes one artifact per
// contract to contracts/artifacts/<ContractName>.json.
//
//   node contracts/compile.js           compile and (re)write the artifacts
//   node contracts/compile.js --check   compile in memory; exit 1 if a committed artifact differs
//
// The output is a pure function of the sources, the compiler version and the settings below, so
// the committed artifacts can be checked against a fresh compile in CI.
'use strict';

const fs = require('fs');
const path = require('path');
const solc = require('solc');

const CONTRACTS_DIR = __dirname;
const SOURCE_DIR = path.join(CONTRACTS_DIR, 'src');
const ARTIFACT_DIR = path.join(CONTRACTS_DIR, 'artifacts');
// Source unit names are relative, never absolute, so that the metadata hash appended to the
// bytecode does not depend on where the repository is checked out.
const SOURCE_PREFIX = 'contracts/src/';
const IMPORT_PREFIX = '@openzeppelin/';

const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: 'cancun',
  viaIR: false,
  metadata: { bytecodeHash: 'ipfs', appendCBOR: true },
  outputSelection: {
    '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] },
  },
};

function parseArguments(argv) {
  const options = { check: false };
  for (const argument of argv) {
    if (argument === '--check') {
      options.check = true;
    } else {
      fail(`unknown argument: ${argument}\nusage: node contracts/compile.js [--check]`);
    }
  }
  return options;
}

function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

function readSources() {
  const fileNames = fs
    .readdirSync(SOURCE_DIR)
    .filter((fileName) => fileName.endsWith('.sol'))
    .sort();
  if (fileNames.length === 0) {
    fail(`no .sol files in ${SOURCE_DIR}`);
  }
  const sources = {};
  for (const fileName of fileNames) {
    sources[SOURCE_PREFIX + fileName] = {
      content: fs.readFileSync(path.join(SOURCE_DIR, fileName), 'utf8'),
    };
  }
  return sources;
}

// Resolves '@openzeppelin/...' through Node's module resolution (so from node_modules) and
// refuses everything else: an import we did not plan for should fail the build, not be guessed.
function resolveImport(importPath) {
  if (!importPath.startsWith(IMPORT_PREFIX)) {
    return { error: `import outside ${IMPORT_PREFIX}* is not allowed: ${importPath}` };
  }
  if (importPath.split('/').includes('..')) {
    return { error: `import path must not contain '..': ${importPath}` };
  }
  try {
    return { contents: fs.readFileSync(require.resolve(importPath), 'utf8') };
  } catch (error) {
    return { error: `cannot resolve ${importPath}: ${error.message}` };
  }
}

function compile(sources) {
  const input = { language: 'Solidity', sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: resolveImport }));
  const diagnostics = output.errors || [];
  const errors = diagnostics.filter((diagnostic) => diagnostic.severity === 'error');
  for (const diagnostic of diagnostics) {
    process.stderr.write(diagnostic.formattedMessage || `${diagnostic.message}\n`);
  }
  if (errors.length > 0) {
    fail(`solc ${solc.version()}: ${errors.length} error(s); no artifact written`);
  }
  return output;
}

// Sorted keys at every depth; arrays keep their order (solc emits the ABI in a stable order).
function sortKeys(value) {
  if (Array.isArray(value)) {
    return value.map(sortKeys);
  }
  if (value !== null && typeof value === 'object') {
    const sorted = {};
    for (const key of Object.keys(value).sort()) {
      sorted[key] = sortKeys(value[key]);
    }
    return sorted;
  }
  return value;
}

function buildArtifacts(sources, output) {
  const compiler = {
    name: 'solc',
    version: solc.version(),
    settings: { evmVersion: SETTINGS.evmVersion, optimizer: SETTINGS.optimizer },
  };
  const artifacts = new Map();
  for (const sourceName of Object.keys(sources)) {
    const contracts = (output.contracts || {})[sourceName] || {};
    for (const contractName of Object.keys(contracts).sort()) {
      if (artifacts.has(contractName)) {
        fail(`contract name ${contractName} is defined twice under ${SOURCE_DIR}`);
      }
      const contract = contracts[contractName];
      const artifact = {
        contractName,
        abi: contract.abi,
        bytecode: `0x${contract.evm.bytecode.object}`,
        deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
        compiler,
      };
      artifacts.set(contractName, `${JSON.stringify(sortKeys(artifact), null, 2)}\n`);
    }
  }
  return artifacts;
}

function committedArtifactNames() {
  if (!fs.existsSync(ARTIFACT_DIR)) {
    return [];
  }
  return fs
    .readdirSync(ARTIFACT_DIR)
    .filter((fileName) => fileName.endsWith('.json'))
    .map((fileName) => fileName.slice(0, -'.json'.length))
    .sort();
}

function check(artifacts) {
  const problems = [];
  for (const [contractName, text] of artifacts) {
    const artifactPath = path.join(ARTIFACT_DIR, `${contractName}.json`);
    if (!fs.existsSync(artifactPath)) {
      problems.push(`missing: ${path.relative(process.cwd(), artifactPath)}`);
    } else if (fs.readFileSync(artifactPath, 'utf8') !== text) {
      problems.push(`differs from a fresh compile: ${path.relative(process.cwd(), artifactPath)}`);
    }
  }
  for (const contractName of committedArtifactNames()) {
    if (!artifacts.has(contractName)) {
      const artifactPath = path.join(ARTIFACT_DIR, `${contractName}.json`);
      problems.push(`stale (no such contract in the sources): ${path.relative(process.cwd(), artifactPath)}`);
    }
  }
  if (problems.length > 0) {
    fail(`${problems.join('\n')}\nrun: node contracts/compile.js`);
  }
  process.stdout.write(`${artifacts.size} artifact(s) match a fresh compile\n`);
}

function write(artifacts) {
  fs.mkdirSync(ARTIFACT_DIR, { recursive: true });
  for (const [contractName, text] of artifacts) {
    fs.writeFileSync(path.join(ARTIFACT_DIR, `${contractName}.json`), text);
  }
  // The directory holds generated files only: an artifact without a source would be loadable
  // yet impossible to rebuild.
  for (const contractName of committedArtifactNames()) {
    if (!artifacts.has(contractName)) {
      fs.unlinkSync(path.join(ARTIFACT_DIR, `${contractName}.json`));
      process.stdout.write(`removed stale artifact ${contractName}.json\n`);
    }
  }
  process.stdout.write(`wrote ${artifacts.size} artifact(s): ${[...artifacts.keys()].join(', ')}\n`);
}

function main() {
  const options = parseArguments(process.argv.slice(2));
  const sources = readSources();
  const artifacts = buildArtifacts(sources, compile(sources));
  if (options.check) {
    check(artifacts);
  } else {
    write(artifacts);
  }
}

main();
