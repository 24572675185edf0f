#!/usr/bin/env pwsh
# A thin wrapper over the same dotnet commands as the README.
#   ./build.ps1 build | test | demo | publish [-Configuration Release] [-Output DIR]
param(
    [Parameter(Position = 0)]
    [ValidateSet('build', 'test', 'demo', 'publish')]
    [string]$Target = 'build',
    [string]$Configuration = 'Release',
    [string]$Output = 'artifacts/relay'
)

$ErrorActionPreference = 'Stop'
Set-Location $PSScriptRoot

function Invoke-Dotnet([string[]]$Arguments) {
    Write-Host "> dotnet $($Arguments -join ' ')"
    & dotnet @Arguments
    if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
}

switch ($Target) {
    'build'   { Invoke-Dotnet @('build', 'Relay.sln', '-c', $Configuration) }
    'test'    { Invoke-Dotnet @('test', 'Relay.sln') }
    'demo'    { Invoke-Dotnet @('run', '--project', 'Relay.Host', '-c', $Configuration, '--', 'demo') }
    'publish' { Invoke-Dotnet @('publish', 'Relay.Host', '-c', $Configuration, '-o', $Output) }
}
