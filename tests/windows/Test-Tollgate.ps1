#Requires -Version 5.1
<#
.SYNOPSIS
    Installs, exercises, verifies and uninstalls the Tollgate driver on a disposable, test-signed
    Windows VM.

.DESCRIPTION
    Run elevated, on a VM you can afford to crash (snapshot it first; attach a kernel debugger if you
    can). The script never changes boot configuration itself: it checks that test signing is on and
    tells you what to do if it is not.

    Phases (run them in this order; Driver Verifier needs a reboot between Install and Verify):

      Install    Checks admin rights and test signing, trusts the package's test certificate, installs
                 the package (pnputil /add-driver <inf> /install), starts the service, checks it is
                 RUNNING, opens loopback TCP connections, stops it again (proves unload works), then
                 enables Driver Verifier for tollgate.sys. Reboot afterwards.
      Verify     After the reboot: checks that Driver Verifier is active for tollgate.sys, then runs
                 start -> connections -> stop cycles under verification and prints verifier's counters.
      Uninstall  Stops the service, deletes the driver package (pnputil /delete-driver oemNN.inf
                 /uninstall /force), checks the service is gone and resets Driver Verifier (the reset
                 takes effect at the next reboot).

    What is honestly tested today: the KMDF shell only creates its driver object. It registers no WFP
    callout, so connections are not held or decided by Tollgate at all -- the connection step only
    proves that networking keeps working with the driver loaded. When the callouts and the verdict
    service exist, add their steps where the script says "later steps".

    Every step prints what it runs; any failure throws and the script exits non-zero.

.PARAMETER Phase
    Install, Verify or Uninstall.

.PARAMETER PackageDir
    Folder holding tollgate.inf, tollgate.sys, tollgate.cat and WDRLocalTestCert.cer: a copy of
    target\<profile>\tollgate_package from the build machine. Needed for Install.

.PARAMETER VerifierMode
    Extended (default): the standard rule classes plus randomized low resources simulation (3),
    additional DDI compliance checking (20) and kernel synchronization delay fuzzing (24), via
    /ruleclasses. Standard: plain `verifier /standard`. Use Standard if your Windows build rejects
    /ruleclasses together with /driver (Microsoft's syntax page lists that form for Windows 11).

.PARAMETER Connections
    Loopback connections per round. Default 20.

.PARAMETER Iterations
    Start/stop cycles in the Verify phase. Default 10.

.PARAMETER RemoveTestCertificate
    Uninstall only: also remove WDRLocalTestCert from LocalMachine\Root and \TrustedPublisher.

.EXAMPLE
    powershell -ExecutionPolicy Bypass -File .\Test-Tollgate.ps1 -Phase Install -PackageDir C:\tollgate_package
    # reboot
    powershell -ExecutionPolicy Bypass -File .\Test-Tollgate.ps1 -Phase Verify
    powershell -ExecutionPolicy Bypass -File .\Test-Tollgate.ps1 -Phase Uninstall
    # reboot (clears Driver Verifier)

.NOTES
    Tool syntax used here:
      pnputil:  https://learn.microsoft.com/en-us/windows-hardware/drivers/devtest/pnputil-command-syntax
      verifier: https://learn.microsoft.com/en-us/windows-hardware/drivers/devtest/verifier-command-line
                (/standard = rule classes 1 2 4 5 6 8 9 12 18 34, i.e. special pool, IRQL checking, pool
                tracking, I/O verification, deadlock detection, DMA checking, security checks,
                miscellaneous checks, DDI compliance checking, WDF verification; /ruleclasses needs
                Windows 10 1803 or later)
      test signing: https://learn.microsoft.com/en-us/windows-hardware/drivers/install/the-testsigning-boot-configuration-option
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)]
    [ValidateSet('Install', 'Verify', 'Uninstall')]
    [string] $Phase,

    [string] $PackageDir,

    [ValidateSet('Extended', 'Standard')]
    [string] $VerifierMode = 'Extended',

    [ValidateRange(1, 10000)]
    [int] $Connections = 20,

    [ValidateRange(1, 1000)]
    [int] $Iterations = 10,

    [switch] $RemoveTestCertificate
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$ServiceName = 'tollgate'
$DriverImage = 'tollgate.sys'
$InfName = 'tollgate.inf'
$CertSubject = 'CN=WDRLocalTestCert'   # the certificate wdk-build's makefile creates and signs with

# Driver Verifier rule classes (verifier-command-line page): the /standard set, plus
# 3 = randomized low resources simulation, 20 = DDI compliance checking (additional),
# 24 = kernel synchronization delay fuzzing.
$StandardRuleClasses = @(1, 2, 4, 5, 6, 8, 9, 12, 18, 34)
$ExtraRuleClasses = @(3, 20, 24)

# Service states reported by `sc.exe query` (SERVICE_STATUS.dwCurrentState; numeric, so not localised).
$SERVICE_STOPPED = 1
$SERVICE_RUNNING = 4

# Win32 error codes sc.exe / pnputil return.
$ERROR_SUCCESS = 0
$ERROR_SERVICE_ALREADY_RUNNING = 1056
$ERROR_SERVICE_DOES_NOT_EXIST = 1060
$ERROR_SERVICE_NOT_ACTIVE = 1062
$ERROR_SUCCESS_REBOOT_REQUIRED = 3010

# Microsoft does not document verifier.exe's exit codes. Accepted after a settings change: 0, and 2,
# assumed to mean "settings changed, reboot required". The result is checked afterwards with
# `verifier /querysettings` rather than trusted from the exit code.
$VerifierChangeExitCodes = @(0, 2)

function Write-Step([string] $Message) {
    Write-Host ''
    Write-Host "==> $Message" -ForegroundColor Cyan
}

function Write-Note([string] $Message) {
    Write-Host "    $Message"
}

# Runs a native tool and echoes the command and its output; returns the output lines and the exit
# code without judging them. $ErrorActionPreference is relaxed around the call because Windows
# PowerShell 5.1 turns a native tool's stderr line into a terminating error under 'Stop' when it is
# redirected with 2>&1; exit codes are checked explicitly instead.
function Invoke-Native {
    param(
        [Parameter(Mandatory = $true)] [string] $FilePath,
        [string[]] $Arguments = @()
    )
    Write-Host "    > $FilePath $($Arguments -join ' ')" -ForegroundColor DarkGray
    $saved = $ErrorActionPreference
    $ErrorActionPreference = 'Continue'
    try {
        $output = @(& $FilePath @Arguments 2>&1 | ForEach-Object { "$_" })
        $code = $LASTEXITCODE
    } finally {
        $ErrorActionPreference = $saved
    }
    foreach ($line in $output) { Write-Host "      $line" -ForegroundColor DarkGray }
    return [pscustomobject]@{ Output = $output; ExitCode = $code }
}

# Like Invoke-Native, but throws unless the exit code is one of $AllowedExitCodes.
function Invoke-Tool {
    param(
        [Parameter(Mandatory = $true)] [string] $FilePath,
        [string[]] $Arguments = @(),
        [int[]] $AllowedExitCodes = @(0)
    )
    $result = Invoke-Native -FilePath $FilePath -Arguments $Arguments
    if ($AllowedExitCodes -notcontains $result.ExitCode) {
        throw "'$FilePath $($Arguments -join ' ')' failed with exit code $($result.ExitCode)."
    }
    return $result
}

function Assert-Administrator {
    Write-Step 'Checking that this PowerShell runs elevated'
    $identity = [Security.Principal.WindowsIdentity]::GetCurrent()
    $principal = [Security.Principal.WindowsPrincipal]::new($identity)
    if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
        throw 'This script must run elevated: open PowerShell with "Run as administrator".'
    }
    Write-Note "running as $($identity.Name), elevated"
}

function Assert-TestSigning {
    Write-Step 'Checking that test signing is on (bcdedit /enum {current})'
    $result = Invoke-Tool -FilePath 'bcdedit.exe' -Arguments @('/enum', '{current}')
    $line = $result.Output | Where-Object { $_ -match '^\s*testsigning\s+' } | Select-Object -First 1
    if (-not $line -or $line -notmatch '^\s*testsigning\s+(Yes|On)\s*$') {
        throw @"
Test signing is not on for the current boot entry (bcdedit shows: '$line').
The package is signed with a self-made test certificate, which Windows only loads in test mode. On this VM:
  1. turn Secure Boot off in the VM's firmware settings (bcdedit refuses while Secure Boot is on),
  2. run elevated:  bcdedit /set testsigning on
  3. reboot, and run this phase again.
"@
    }
    Write-Note 'testsigning is on'
}

# Returns the numeric service state, or $null when the service does not exist.
function Get-ServiceState {
    $result = Invoke-Native -FilePath 'sc.exe' -Arguments @('query', $ServiceName)
    if ($result.ExitCode -eq $ERROR_SERVICE_DOES_NOT_EXIST) {
        Write-Host '      (the service does not exist)' -ForegroundColor DarkGray
        return $null
    }
    if ($result.ExitCode -ne $ERROR_SUCCESS) {
        throw "sc.exe query $ServiceName failed with exit code $($result.ExitCode)."
    }
    $stateLine = $result.Output | Where-Object { $_ -match '^\s*STATE\s*:\s*(\d+)' } | Select-Object -First 1
    if (-not $stateLine) { throw 'Could not find the STATE line in the sc.exe query output.' }
    [void]($stateLine -match '^\s*STATE\s*:\s*(\d+)')
    return [int]$Matches[1]
}

function Wait-ServiceState([int] $Wanted, [int] $TimeoutSeconds = 30) {
    $deadline = (Get-Date).AddSeconds($TimeoutSeconds)
    while ($true) {
        $state = Get-ServiceState
        if ($state -eq $Wanted) { return }
        if ((Get-Date) -gt $deadline) {
            throw "Service '$ServiceName' did not reach state $Wanted within $TimeoutSeconds s (last state: $state)."
        }
        Start-Sleep -Milliseconds 500
    }
}

# Returns $true if the driver started, $false if sc.exe reported a start failure (allowed only when
# $AllowFailure, i.e. under low-resources simulation, where a failing DriverEntry is correct behaviour).
function Start-Tollgate([switch] $AllowFailure) {
    Write-Step "Starting the driver (sc.exe start $ServiceName)"
    $code = (Invoke-Native -FilePath 'sc.exe' -Arguments @('start', $ServiceName)).ExitCode
    if ($code -eq $ERROR_SUCCESS -or $code -eq $ERROR_SERVICE_ALREADY_RUNNING) {
        Wait-ServiceState -Wanted $SERVICE_RUNNING
        Write-Note 'service is RUNNING'
        return $true
    }
    if ($AllowFailure) {
        Write-Warning "sc.exe start failed with exit code $code; accepted in this phase (fault injection can fail DriverEntry)."
        return $false
    }
    throw "sc.exe start $ServiceName failed with exit code $code. Check System event log and 'verifier /query'."
}

function Stop-Tollgate {
    Write-Step "Stopping the driver (sc.exe stop $ServiceName) -- this unloads tollgate.sys"
    $code = (Invoke-Native -FilePath 'sc.exe' -Arguments @('stop', $ServiceName)).ExitCode
    if ($code -ne $ERROR_SUCCESS -and $code -ne $ERROR_SERVICE_NOT_ACTIVE) {
        throw "sc.exe stop $ServiceName failed with exit code $code."
    }
    Wait-ServiceState -Wanted $SERVICE_STOPPED
    Write-Note 'service is STOPPED (driver unloaded)'
}

# Opens $Count TCP connections to a listener this script owns on $Address, exchanging one byte each
# way, with timeouts so that a held connection fails the step instead of hanging the script.
function Test-LoopbackConnections([string] $Address, [int] $Count) {
    Write-Step "Opening $Count TCP connections to a local listener on $Address"
    $ip = [System.Net.IPAddress]::Parse($Address)
    $listener = [System.Net.Sockets.TcpListener]::new($ip, 0)
    try {
        $listener.Start()
    } catch {
        Write-Warning "Cannot listen on ${Address}: $($_.Exception.Message). Skipping this address."
        return
    }
    try {
        $port = ([System.Net.IPEndPoint]$listener.LocalEndpoint).Port
        Write-Note "listening on ${Address}:$port"
        for ($i = 1; $i -le $Count; $i++) {
            $client = [System.Net.Sockets.TcpClient]::new($ip.AddressFamily)
            try {
                $connect = $client.ConnectAsync($ip, $port)
                if (-not $connect.Wait(10000)) {
                    throw "connection $i to ${Address}:$port did not complete within 10 s"
                }
                $accept = $listener.AcceptTcpClientAsync()
                if (-not $accept.Wait(10000)) {
                    throw "the listener did not accept connection $i within 10 s"
                }
                $server = $accept.Result
                try {
                    $client.ReceiveTimeout = 10000
                    $server.ReceiveTimeout = 10000
                    $client.GetStream().WriteByte(0x54)
                    if ($server.GetStream().ReadByte() -ne 0x54) { throw "connection ${i}: server read the wrong byte" }
                    $server.GetStream().WriteByte(0x47)
                    if ($client.GetStream().ReadByte() -ne 0x47) { throw "connection ${i}: client read the wrong byte" }
                } finally {
                    $server.Close()
                }
            } finally {
                $client.Close()
            }
        }
        Write-Note "$Count connections opened, used and closed"
    } finally {
        $listener.Stop()
    }
}

function Test-Connections {
    # Today the driver registers no callout, so these connections are decided by Windows alone; this
    # only proves that the loaded driver does not break networking. Later steps (callouts + verdict
    # service): start the verdict service here and check allow/block/timeout verdicts.
    Test-LoopbackConnections -Address '127.0.0.1' -Count $Connections
    Test-LoopbackConnections -Address '::1' -Count $Connections
}

function Get-PublishedInfNames {
    Write-Step "Looking up the published name of $InfName (pnputil /enum-drivers)"
    $result = Invoke-Tool -FilePath 'pnputil.exe' -Arguments @('/enum-drivers')
    # The output is a series of blocks separated by blank lines, one per driver package, with
    # "Published Name: oemNN.inf" and "Original Name: tollgate.inf" lines. Labels are localised, so
    # match on the values only.
    $names = @()
    $block = @()
    foreach ($line in ($result.Output + '')) {
        if ($line.Trim() -eq '') {
            $values = $block | ForEach-Object { ($_ -split ':', 2)[-1].Trim() }
            if ($values -contains $InfName) {
                $names += $values | Where-Object { $_ -match '^oem\d+\.inf$' }
            }
            $block = @()
        } else {
            $block += $line
        }
    }
    return $names
}

function Get-VerifierConfiguredForTollgate {
    $result = Invoke-Tool -FilePath 'verifier.exe' -Arguments @('/querysettings')
    return [bool]($result.Output | Where-Object { $_ -match [regex]::Escape($DriverImage) })
}

function Invoke-Install {
    if (-not $PackageDir) { throw 'Install needs -PackageDir <folder with tollgate.inf, .sys, .cat, .cer>.' }
    $PackageDir = (Resolve-Path -LiteralPath $PackageDir).Path
    foreach ($file in @($InfName, $DriverImage, 'tollgate.cat', 'WDRLocalTestCert.cer')) {
        if (-not (Test-Path -LiteralPath (Join-Path $PackageDir $file))) {
            throw "Package file missing: $(Join-Path $PackageDir $file). Copy the whole target\<profile>\tollgate_package folder."
        }
    }
    Assert-Administrator
    Assert-TestSigning

    if ($null -ne (Get-ServiceState)) {
        throw "Service '$ServiceName' already exists. Run -Phase Uninstall first."
    }

    Write-Step 'Trusting the package test certificate (LocalMachine\Root and LocalMachine\TrustedPublisher)'
    $cer = Join-Path $PackageDir 'WDRLocalTestCert.cer'
    foreach ($store in @('Cert:\LocalMachine\Root', 'Cert:\LocalMachine\TrustedPublisher')) {
        $imported = Import-Certificate -FilePath $cer -CertStoreLocation $store
        Write-Note "imported $($imported.Subject) ($($imported.Thumbprint)) into $store"
    }

    Write-Step "Installing the driver package (pnputil /add-driver $InfName /install)"
    $add = Invoke-Tool -FilePath 'pnputil.exe' -Arguments @('/add-driver', (Join-Path $PackageDir $InfName), '/install') `
        -AllowedExitCodes @($ERROR_SUCCESS, $ERROR_SUCCESS_REBOOT_REQUIRED)
    if ($add.ExitCode -eq $ERROR_SUCCESS_REBOOT_REQUIRED) {
        Write-Warning 'pnputil asks for a reboot to complete the installation.'
    }
    $published = @(Get-PublishedInfNames)
    if ($published.Count -eq 0) { throw "pnputil reported success but no driver package with original name $InfName is in the driver store." }
    Write-Note "published as: $($published -join ', ')"

    $state = Get-ServiceState
    if ($null -eq $state) { throw "The INF installed but created no '$ServiceName' service." }
    if ($state -ne $SERVICE_STOPPED) { throw "Freshly installed service is in state $state, expected STOPPED (demand start)." }

    [void](Start-Tollgate)
    Test-Connections
    Stop-Tollgate
    [void](Start-Tollgate)
    Stop-Tollgate

    Write-Step "Enabling Driver Verifier for $DriverImage ($VerifierMode)"
    if ($VerifierMode -eq 'Standard') {
        $verifierArgs = @('/standard', '/driver', $DriverImage)
    } else {
        $classes = @($StandardRuleClasses + $ExtraRuleClasses | ForEach-Object { "$_" })
        $verifierArgs = @('/ruleclasses') + $classes + @('/driver', $DriverImage)
    }
    try {
        [void](Invoke-Tool -FilePath 'verifier.exe' -Arguments $verifierArgs -AllowedExitCodes $VerifierChangeExitCodes)
    } catch {
        throw "$($_.Exception.Message) If this Windows build rejects /ruleclasses with /driver, rerun with -VerifierMode Standard."
    }
    if (-not (Get-VerifierConfiguredForTollgate)) {
        throw "verifier /querysettings does not list $DriverImage after enabling it."
    }

    Write-Step 'Install phase passed'
    Write-Note 'Driver Verifier settings take effect only after a reboot. Reboot now, then run:'
    Write-Note "  .\Test-Tollgate.ps1 -Phase Verify"
}

function Invoke-Verify {
    Assert-Administrator
    Assert-TestSigning
    if ($null -eq (Get-ServiceState)) { throw "Service '$ServiceName' does not exist. Run -Phase Install first." }

    Write-Step 'Checking the Driver Verifier configuration (verifier /querysettings)'
    if (-not (Get-VerifierConfiguredForTollgate)) {
        throw "Driver Verifier is not configured for $DriverImage. Run -Phase Install (which enables it) and reboot."
    }
    $boot = (Get-CimInstance -ClassName Win32_OperatingSystem).LastBootUpTime
    $uptime = (Get-Date) - $boot
    Write-Note ("system up for {0:N1} minutes" -f $uptime.TotalMinutes)
    if ($uptime.TotalMinutes -lt 8) {
        Write-Warning 'Low resources simulation injects no faults during the first minutes after boot (default delay 7 minutes); early cycles run without fault injection.'
    }

    $started = 0
    $failedStarts = 0
    for ($i = 1; $i -le $Iterations; $i++) {
        Write-Step "Verify cycle $i of $Iterations"
        if (Start-Tollgate -AllowFailure) {
            $started++
            if ($i -eq 1) {
                Write-Step 'Checking that Driver Verifier is active for the loaded driver (verifier /query)'
                $query = Invoke-Tool -FilePath 'verifier.exe' -Arguments @('/query')
                if (-not ($query.Output | Where-Object { $_ -match [regex]::Escape($DriverImage) })) {
                    throw "verifier /query does not list $DriverImage: Driver Verifier is configured but not active. Did you reboot after the Install phase?"
                }
            }
            Test-Connections
            Stop-Tollgate
        } else {
            $failedStarts++
            Wait-ServiceState -Wanted $SERVICE_STOPPED
        }
    }

    Write-Step 'Driver Verifier counters (verifier /query)'
    [void](Invoke-Tool -FilePath 'verifier.exe' -Arguments @('/query'))

    if ($started -eq 0) {
        throw "The driver never started in $Iterations attempts. Check the System event log."
    }
    Write-Step 'Verify phase passed'
    Write-Note "$started cycles ran, $failedStarts starts failed (accepted under fault injection), no bugcheck."
    Write-Note 'A Driver Verifier violation would have bugchecked the VM (0xC4 or another stop code): after a crash,'
    Write-Note 'analyse C:\Windows\MEMORY.DMP with WinDbg (!analyze -v) before doing anything else.'
}

function Invoke-Uninstall {
    Assert-Administrator

    $state = Get-ServiceState
    if ($null -ne $state -and $state -ne $SERVICE_STOPPED) {
        Stop-Tollgate
    }

    $published = @(Get-PublishedInfNames)
    if ($published.Count -eq 0) {
        Write-Warning "No driver package with original name $InfName is in the driver store; nothing to delete."
    }
    foreach ($oem in $published) {
        Write-Step "Deleting driver package $oem (pnputil /delete-driver $oem /uninstall /force)"
        $del = Invoke-Tool -FilePath 'pnputil.exe' -Arguments @('/delete-driver', $oem, '/uninstall', '/force') `
            -AllowedExitCodes @($ERROR_SUCCESS, $ERROR_SUCCESS_REBOOT_REQUIRED)
        if ($del.ExitCode -eq $ERROR_SUCCESS_REBOOT_REQUIRED) {
            Write-Warning 'pnputil asks for a reboot to complete the removal.'
        }
    }

    Write-Step 'Checking that the service is gone'
    if ($null -ne (Get-ServiceState)) {
        throw "Service '$ServiceName' still exists after deleting the package. Remove it by hand with: sc.exe delete $ServiceName"
    }
    Write-Note 'service removed'

    Write-Step 'Resetting Driver Verifier (verifier /reset)'
    [void](Invoke-Tool -FilePath 'verifier.exe' -Arguments @('/reset') -AllowedExitCodes $VerifierChangeExitCodes)

    if ($RemoveTestCertificate) {
        Write-Step "Removing the test certificate ($CertSubject) from LocalMachine\Root and LocalMachine\TrustedPublisher"
        foreach ($store in @('Cert:\LocalMachine\Root', 'Cert:\LocalMachine\TrustedPublisher')) {
            Get-ChildItem -Path $store | Where-Object { $_.Subject -eq $CertSubject } | ForEach-Object {
                Write-Note "removing $($_.Thumbprint) from $store"
                Remove-Item -LiteralPath $_.PSPath
            }
        }
    }

    Write-Step 'Uninstall phase passed'
    Write-Note 'Reboot to finish turning Driver Verifier off.'
}

switch ($Phase) {
    'Install' { Invoke-Install }
    'Verify' { Invoke-Verify }
    'Uninstall' { Invoke-Uninstall }
}
