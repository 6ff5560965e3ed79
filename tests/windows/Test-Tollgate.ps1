#Requires -Version 5.1
<#
.SYNOPSIS
    Installs, exercises, verifies and uninstalls the Tollgate driver on a disposable, test-signed
    Windows VM.

.DESCRIPTION
    Run elevated, on a VM you can afford to crash (snapshot it first; attach a kernel debugger if you
    can). The script never changes boot configuration itself: it checks that test signing is on and
    tells you what to do if it is not.

    !!! WARNING: while tollgate.sys is loaded and NO verdict service (tollgatectl serve) is connected,
    !!! every new connection on the machine gets the driver's default verdict, BLOCK (fail-closed).
    !!! That includes RDP, SMB, DNS and WinRM. Run this script from the VM's console (Hyper-V
    !!! "Connect", VirtualBox/VMware window), never over RDP or a remote PowerShell session. If you
    !!! lose connectivity: `sc.exe stop tollgate` (after stopping tollgatectl) gives it back.

    Phases (run them in this order; Driver Verifier needs a reboot between Install and Verify):

      Install    Checks admin rights and test signing, trusts the package's test certificate, installs
                 the package (pnputil /add-driver <inf> /install), starts the service, checks it is
                 RUNNING, runs the Exercise checks (with -TollgatectlPath; without it only the
                 fail-closed check), stops it again (proves unload works), then enables Driver
                 Verifier for tollgate.sys. Reboot afterwards.
      Verify     After the reboot: checks that Driver Verifier is active for tollgate.sys, then runs
                 start -> Exercise checks -> stop cycles under verification (standard rule classes,
                 DDI compliance checking and, with -VerifierMode Extended, low resources simulation)
                 and prints verifier's counters.
      Exercise   With the driver installed (started here if it is not running, and stopped again at
                 the end): the verdict checks, each printing PASS or FAIL:
                   (a) no service: a new TCP connection to -TargetAddress:443 is blocked (fail-closed);
                   (b) `tollgatectl serve --rules <file>` (the script writes the rules: allow loopback,
                       allow TCP 443 to -TargetAddress, block port 80, default block): the allowed
                       connection succeeds, the port-80 one is blocked, serve printed both decisions,
                       loopback connections work; and the stream callout: a loopback HTTP request with
                       Host www.blocked.tollgate.test (the rules' domain block, which serve pushes to
                       the driver) is dropped inline while www.allowed.tollgate.test's exchange
                       completes, and serve printed the dropped flow's event;
                   (c) serve with --verdict-delay holds -PendConnections connections; the script kills
                       serve mid-pend: they must fail (default verdict, at service exit rather than at
                       the 5 s pend timeout), the driver must still be RUNNING;
                   (d) a client process waiting on a pended connect is killed: serve and the driver
                       must keep running; serve is restarted and an allowed connection works again;
                   (e) TCP/pool counters (Get-Counter) before and after, sc.exe query, a summary.
                 Needs -TollgatectlPath.
      Uninstall  Stops the service, deletes the driver package (pnputil /delete-driver oemNN.inf
                 /uninstall /force), checks the service is gone and resets Driver Verifier (the reset
                 takes effect at the next reboot).

    "Blocked" means the connect failed with SocketError AccessDenied (WSAEACCES, 10013), which is what
    Winsock reports for a connection WFP blocked at ALE (assumed; nothing here has run on Windows).
    Any other failure (timeout, unreachable) is reported as such and fails a "blocked" check, so a VM
    without a route to -TargetAddress cannot pass by accident; "allowed" checks need that route.

    Every step prints what it runs. A setup failure throws; every check prints PASS or FAIL, a summary
    follows, and the script exits non-zero if anything failed.

.PARAMETER Phase
    Install, Verify, Exercise or Uninstall.

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

.PARAMETER TollgatectlPath
    Path of tollgatectl.exe (built for x86_64-pc-windows-msvc: `cargo build --release -p tollgatectl`,
    target\release\tollgatectl.exe). Required for Exercise; optional for Install and Verify, which
    run only the fail-closed check without it.

.PARAMETER TargetAddress
    The remote address of the allowed (TCP 443) and blocked (TCP 80) connections. Default 1.1.1.1;
    it must accept TCP 443 for the "allowed" checks. Use an IPv4 or IPv6 literal, not a name (DNS is
    blocked while no service runs).

.PARAMETER PendConnections
    Connections held by the slowed-down service when the Exercise kills it. Default 5.

.EXAMPLE
    powershell -ExecutionPolicy Bypass -File .\Test-Tollgate.ps1 -Phase Install -PackageDir C:\tollgate_package -TollgatectlPath C:\tollgate\tollgatectl.exe
    # reboot
    powershell -ExecutionPolicy Bypass -File .\Test-Tollgate.ps1 -Phase Verify -TollgatectlPath C:\tollgate\tollgatectl.exe
    powershell -ExecutionPolicy Bypass -File .\Test-Tollgate.ps1 -Phase Exercise -TollgatectlPath C:\tollgate\tollgatectl.exe
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
    [ValidateSet('Install', 'Verify', 'Exercise', 'Uninstall')]
    [string] $Phase,

    [string] $PackageDir,

    [ValidateSet('Extended', 'Standard')]
    [string] $VerifierMode = 'Extended',

    [ValidateRange(1, 10000)]
    [int] $Connections = 20,

    [ValidateRange(1, 1000)]
    [int] $Iterations = 10,

    [switch] $RemoveTestCertificate,

    [string] $TollgatectlPath,

    [ValidateNotNullOrEmpty()]
    [string] $TargetAddress = '1.1.1.1',

    [ValidateRange(1, 200)]
    [int] $PendConnections = 5
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

# The Exercise: tollgatectl holds each batch this long in step (c)/(d) (--verdict-delay); below the
# driver's default pend timeout of 5 s, so that only the kill resolves the held connections.
$VerdictDelaySeconds = 4
$PendTimeoutSeconds = 5

# Every check's result, for the summary and the exit code.
$script:Checks = New-Object 'System.Collections.Generic.List[object]'
# tollgatectl processes this script started (killed on the way out, whatever happens).
$script:ServeProcesses = New-Object 'System.Collections.Generic.List[object]'

function Write-Step([string] $Message) {
    Write-Host ''
    Write-Host "==> $Message" -ForegroundColor Cyan
}

function Write-Note([string] $Message) {
    Write-Host "    $Message"
}

function Write-FailClosedWarning {
    $lines = @(
        '',
        '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
        '!!! While tollgate.sys is loaded and no verdict service (tollgatectl serve) is connected,',
        '!!! EVERY NEW CONNECTION ON THIS MACHINE IS BLOCKED (fail-closed default verdict): RDP, SMB,',
        '!!! DNS, WinRM included. Run this from the VM console, not over RDP or remote PowerShell.',
        '!!! To get connectivity back: stop tollgatectl, then `sc.exe stop tollgate`.',
        '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
        ''
    )
    foreach ($line in $lines) { Write-Host $line -ForegroundColor Yellow }
    $session = $env:SESSIONNAME
    if ($session -and $session -like 'RDP-*') {
        Write-Warning "This PowerShell runs in an RDP session ($session): the driver will cut it off. Use the VM console."
    }
}

# Records one check and prints PASS or FAIL.
function Add-Check {
    param(
        [Parameter(Mandatory = $true)] [string] $Name,
        [Parameter(Mandatory = $true)] [bool] $Passed,
        [string] $Detail = ''
    )
    $script:Checks.Add([pscustomobject]@{ Name = $Name; Passed = $Passed; Detail = $Detail })
    $suffix = ''
    if ($Detail) { $suffix = " -- $Detail" }
    if ($Passed) {
        Write-Host "    PASS  $Name$suffix" -ForegroundColor Green
    } else {
        Write-Host "    FAIL  $Name$suffix" -ForegroundColor Red
    }
}

# Prints every check; returns the number of failures.
function Write-CheckSummary {
    $all = @($script:Checks)
    if ($all.Count -eq 0) { return 0 }
    $failed = @($all | Where-Object { -not $_.Passed })
    Write-Step "Summary: $($all.Count - $failed.Count) of $($all.Count) checks passed"
    foreach ($check in $all) {
        if ($check.Passed) {
            Write-Host "    PASS  $($check.Name)" -ForegroundColor Green
        } else {
            Write-Host "    FAIL  $($check.Name) -- $($check.Detail)" -ForegroundColor Red
        }
    }
    return $failed.Count
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
# With -Required, a listener that cannot start (e.g. its bind was blocked) throws instead of being skipped.
function Test-LoopbackConnections([string] $Address, [int] $Count, [switch] $Required) {
    Write-Step "Opening $Count TCP connections to a local listener on $Address"
    $ip = [System.Net.IPAddress]::Parse($Address)
    $listener = [System.Net.Sockets.TcpListener]::new($ip, 0)
    try {
        $listener.Start()
    } catch {
        if ($Required) { throw "cannot listen on ${Address}: $($_.Exception.Message)" }
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

# Loopback connections through the driver. The driver holds every bind and connect (its filters
# have no conditions), so this only works while a verdict service that allows loopback is connected
# (the Exercise's rules do); without one, the binds get the default verdict (block).
function Test-Connections {
    Test-LoopbackConnections -Address '127.0.0.1' -Count $Connections -Required
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

# ---------------------------------------------------------------------------------------------------
# Exercise: verdicts through tollgatectl serve

# Reads a file another process is still writing (tollgatectl's redirected stdout/stderr).
function Read-SharedText([string] $Path) {
    if (-not (Test-Path -LiteralPath $Path)) { return '' }
    $share = [System.IO.FileShare]'ReadWrite, Delete'
    $stream = [System.IO.File]::Open($Path, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read, $share)
    try {
        $reader = New-Object System.IO.StreamReader($stream)
        return $reader.ReadToEnd()
    } finally {
        $stream.Dispose()
    }
}

# The SocketError of a failed connect task, or $null.
function Get-SocketError($Task) {
    $exception = $Task.Exception
    while ($null -ne $exception) {
        if ($exception -is [System.Net.Sockets.SocketException]) { return $exception.SocketErrorCode }
        $exception = $exception.InnerException
    }
    return $null
}

# Classifies a finished (or unfinished) connect task: Connected, Blocked (AccessDenied: WFP's block),
# TimedOut (still running), or Failed (any other error).
function Get-ConnectOutcome($Task) {
    if (-not $Task.IsCompleted) { return [pscustomobject]@{ Outcome = 'TimedOut'; Detail = 'no answer' } }
    if ($Task.IsFaulted) {
        $code = Get-SocketError $Task
        if ($code -eq [System.Net.Sockets.SocketError]::AccessDenied) {
            return [pscustomobject]@{ Outcome = 'Blocked'; Detail = 'SocketError AccessDenied (WSAEACCES)' }
        }
        $message = $Task.Exception.GetBaseException().Message
        return [pscustomobject]@{ Outcome = 'Failed'; Detail = "SocketError $code ($message)" }
    }
    if ($Task.IsCanceled) { return [pscustomobject]@{ Outcome = 'Failed'; Detail = 'cancelled' } }
    return [pscustomobject]@{ Outcome = 'Connected'; Detail = 'connected' }
}

# One TCP connect with a timeout; returns Outcome, Detail, Milliseconds.
function Test-TcpConnect([string] $Address, [int] $Port, [int] $TimeoutMs = 10000) {
    $ip = [System.Net.IPAddress]::Parse($Address)
    Write-Note "connecting to ${Address}:$Port (timeout $TimeoutMs ms)"
    $client = New-Object System.Net.Sockets.TcpClient($ip.AddressFamily)
    $watch = [System.Diagnostics.Stopwatch]::StartNew()
    try {
        $task = $client.ConnectAsync($ip, $Port)
        try { [void]$task.Wait($TimeoutMs) } catch { }   # a faulted task throws here; judged below
        $watch.Stop()
        $result = Get-ConnectOutcome $task
        $result | Add-Member -NotePropertyName Milliseconds -NotePropertyValue $watch.ElapsedMilliseconds
        Write-Note "  -> $($result.Outcome): $($result.Detail) after $($watch.ElapsedMilliseconds) ms"
        return $result
    } finally {
        $client.Close()
    }
}

# A loopback TCP exchange: the client sends an HTTP request head for $HostName, the server answers.
# 'Exchanged' when the answer arrives; 'Dropped' when the connection is reset or closed before the
# server sees the request (the stream callout's DROP_CONNECTION); 'NoAccept' when it never connected.
function Test-StreamExchange([string] $HostName) {
    $listener = New-Object System.Net.Sockets.TcpListener([System.Net.IPAddress]::Loopback, 0)
    $listener.Start()
    $port = $listener.LocalEndpoint.Port
    $client = New-Object System.Net.Sockets.TcpClient([System.Net.Sockets.AddressFamily]::InterNetwork)
    $server = $null
    Write-Note "loopback exchange on 127.0.0.1:$port with Host: $HostName"
    try {
        $accept = $listener.AcceptTcpClientAsync()
        $client.Connect([System.Net.IPAddress]::Loopback, $port)
        if (-not $accept.Wait(5000)) { return 'NoAccept' }
        $server = $accept.Result
        $request = [System.Text.Encoding]::ASCII.GetBytes("GET / HTTP/1.1`r`nHost: $HostName`r`nConnection: close`r`n`r`n")
        $clientStream = $client.GetStream()
        $clientStream.Write($request, 0, $request.Length)
        $serverStream = $server.GetStream()
        $serverStream.ReadTimeout = 3000
        $buffer = New-Object byte[] 4096
        $read = 0
        try { $read = $serverStream.Read($buffer, 0, $buffer.Length) } catch { $read = -1 }
        if ($read -le 0) { return 'Dropped' }
        $reply = [System.Text.Encoding]::ASCII.GetBytes("HTTP/1.1 204 No Content`r`nConnection: close`r`n`r`n")
        $serverStream.Write($reply, 0, $reply.Length)
        $clientStream.ReadTimeout = 3000
        try { $read = $clientStream.Read($buffer, 0, $buffer.Length) } catch { $read = -1 }
        if ($read -gt 0) { return 'Exchanged' }
        return 'Dropped'
    } catch {
        Write-Note "  exchange failed: $($_.Exception.Message)"
        return 'Dropped'
    } finally {
        $client.Close()
        if ($null -ne $server) { $server.Close() }
        $listener.Stop()
    }
}

function Format-Remote([string] $Address, [int] $Port) {
    $ip = [System.Net.IPAddress]::Parse($Address)
    if ($ip.AddressFamily -eq [System.Net.Sockets.AddressFamily]::InterNetworkV6) { return "[$ip]:$Port" }
    return "${ip}:$Port"
}

function Write-ExerciseRules([string] $Path) {
    $text = @"
# Written by Test-Tollgate.ps1 for the Exercise checks. First match wins.
default = "block"
ask_fallback = "block"

# Domain-only, and first: the service pushes it to the driver, whose stream callout drops a flow
# whose HTTP Host or TLS SNI matches (check (b), stream part).
[[rule]]
name = "block-test-domain"
action = "block"
domain = ["*.blocked.tollgate.test"]

[[rule]]
name = "allow-loopback"
action = "allow"
remote = ["127.0.0.0/8", "::1/128"]

[[rule]]
name = "allow-target-https"
action = "allow"
protocol = "tcp"
remote = ["$TargetAddress"]
remote_port = [443]

[[rule]]
name = "block-http"
action = "block"
remote_port = [80]
"@
    [System.IO.File]::WriteAllText($Path, $text)
    Write-Note "rules written to $Path"
}

# Starts `tollgatectl serve --rules <file> [--verdict-delay Ns]` with its output in $WorkDir and waits
# until it says it is connected. Returns an object with Process, Out and Err (log paths), or $null
# when it did not connect (a FAIL is recorded).
function Start-Serve([string] $WorkDir, [string] $RulesPath, [string] $Name, [int] $DelaySeconds = 0) {
    $out = Join-Path $WorkDir "$Name.out.log"
    $err = Join-Path $WorkDir "$Name.err.log"
    $arguments = "serve --rules `"$RulesPath`""
    if ($DelaySeconds -gt 0) { $arguments += " --verdict-delay ${DelaySeconds}s" }
    Write-Step "Starting the verdict service: $TollgatectlPath $arguments"
    $process = Start-Process -FilePath $TollgatectlPath -ArgumentList $arguments -NoNewWindow -PassThru `
        -RedirectStandardOutput $out -RedirectStandardError $err
    # Windows PowerShell 5.1 reports no ExitCode for a Start-Process -PassThru process unless its
    # handle was opened while it ran.
    [void]$process.Handle
    $script:ServeProcesses.Add($process)
    Write-Note "pid $($process.Id); stdout $out; stderr $err"
    $serve = [pscustomobject]@{ Process = $process; Out = $out; Err = $err; Name = $Name }
    $deadline = (Get-Date).AddSeconds(20)
    while ((Get-Date) -lt $deadline) {
        if ((Read-SharedText $err) -match 'connected to ') {
            Add-Check -Name "$Name connected to \\.\Tollgate" -Passed $true
            return $serve
        }
        if ($process.HasExited) { break }
        Start-Sleep -Milliseconds 250
    }
    $why = 'did not report a connection within 20 s'
    if ($process.HasExited) { $why = "exited with code $($process.ExitCode)" }
    Add-Check -Name "$Name connected to \\.\Tollgate" -Passed $false -Detail "$why; stderr: $((Read-SharedText $err).Trim())"
    Stop-Serve $serve
    return $null
}

# Kills a serve process (TerminateProcess: what a crash looks like to the driver) and waits for it.
function Stop-Serve($Serve) {
    if ($null -eq $Serve) { return }
    $process = $Serve.Process
    if (-not $process.HasExited) {
        Write-Note "killing $($Serve.Name) (pid $($process.Id))"
        Stop-Process -Id $process.Id -Force -ErrorAction SilentlyContinue
    }
    if (-not $process.WaitForExit(15000)) {
        Write-Warning "$($Serve.Name) (pid $($process.Id)) did not exit within 15 s"
    }
}

function Stop-AllServe {
    foreach ($process in @($script:ServeProcesses)) {
        if (-not $process.HasExited) {
            Write-Note "stopping tollgatectl pid $($process.Id)"
            Stop-Process -Id $process.Id -Force -ErrorAction SilentlyContinue
            [void]$process.WaitForExit(15000)
        }
    }
    $script:ServeProcesses.Clear()
}

function Show-ServeLog($Serve) {
    Write-Note "$($Serve.Name) stdout (decisions):"
    foreach ($line in ((Read-SharedText $Serve.Out) -split "`r?`n")) { if ($line) { Write-Host "      $line" -ForegroundColor DarkGray } }
    Write-Note "$($Serve.Name) stderr:"
    foreach ($line in ((Read-SharedText $Serve.Err) -split "`r?`n")) { if ($line) { Write-Host "      $line" -ForegroundColor DarkGray } }
}

# Waits up to $Seconds for a line matching $Pattern in serve's stdout.
function Wait-ServeLine($Serve, [string] $Pattern, [int] $Seconds = 5) {
    $deadline = (Get-Date).AddSeconds($Seconds)
    do {
        $match = ((Read-SharedText $Serve.Out) -split "`r?`n") | Where-Object { $_ -match $Pattern } | Select-Object -First 1
        if ($match) { return $match }
        Start-Sleep -Milliseconds 200
    } while ((Get-Date) -lt $deadline)
    return $null
}

function Test-DriverRunning([string] $Label) {
    $state = Get-ServiceState
    Add-Check -Name "driver still RUNNING $Label (sc.exe query)" -Passed ($state -eq $SERVICE_RUNNING) -Detail "state $state"
}

function Get-CounterSnapshot {
    $paths = @('\TCPv4\Connection Failures', '\TCPv4\Connections Established', '\TCPv6\Connection Failures',
        '\Memory\Pool Nonpaged Bytes')
    if (-not (Get-Command -Name Get-Counter -ErrorAction SilentlyContinue)) {
        Write-Warning 'Get-Counter is not available in this PowerShell; no counters.'
        return $null
    }
    try {
        $samples = @((Get-Counter -Counter $paths -ErrorAction Stop).CounterSamples)
    } catch {
        # Counter names are localised: on a non-English Windows these English paths do not exist.
        Write-Warning "Get-Counter failed ($($_.Exception.Message)); no counters."
        return $null
    }
    $snapshot = [ordered]@{}
    foreach ($sample in $samples) {
        $parts = $sample.Path -split '\\'
        $snapshot[($parts[-2] + '\' + $parts[-1])] = [double]$sample.CookedValue
    }
    return $snapshot
}

function Write-CounterDelta($Before, $After) {
    if ($null -eq $Before -or $null -eq $After) { return }
    foreach ($key in $After.Keys) {
        $was = 0.0
        if ($Before.Contains($key)) { $was = $Before[$key] }
        Write-Note ("{0,-36} before {1,14:N0}  after {2,14:N0}  delta {3,12:N0}" -f $key, $was, $After[$key], ($After[$key] - $was))
    }
}

# Starts a separate PowerShell that connects to $TargetAddress:443 and blocks there; returns the
# process once it is about to connect (it touches a marker file first).
function Start-ConnectingClient([string] $WorkDir) {
    $marker = Join-Path $WorkDir 'client-connecting.marker'
    if (Test-Path -LiteralPath $marker) { Remove-Item -LiteralPath $marker -Force }
    $markerLiteral = $marker -replace "'", "''"
    $code = @"
`$ip = [System.Net.IPAddress]::Parse('$TargetAddress')
`$client = New-Object System.Net.Sockets.TcpClient(`$ip.AddressFamily)
[System.IO.File]::WriteAllText('$markerLiteral', 'connecting')
try { `$client.Connect(`$ip, 443); exit 0 } catch { exit 3 }
"@
    $encoded = [Convert]::ToBase64String([System.Text.Encoding]::Unicode.GetBytes($code))
    $exe = (Get-Process -Id $PID).Path
    $process = Start-Process -FilePath $exe -ArgumentList "-NoProfile -NonInteractive -EncodedCommand $encoded" `
        -WindowStyle Hidden -PassThru
    Write-Note "client $exe pid $($process.Id)"
    $deadline = (Get-Date).AddSeconds(60)
    while (-not (Test-Path -LiteralPath $marker)) {
        if ($process.HasExited -or (Get-Date) -gt $deadline) { return $process }
        Start-Sleep -Milliseconds 100
    }
    return $process
}

# The verdict checks (a)-(e). The driver must be RUNNING; every tollgatectl started here is stopped
# before this returns, so the caller can stop the driver.
function Invoke-ExerciseChecks([string] $Label = '') {
    if (-not $TollgatectlPath) { throw 'The Exercise checks need -TollgatectlPath <path of tollgatectl.exe>.' }
    $exe = (Resolve-Path -LiteralPath $TollgatectlPath).Path
    Set-Variable -Name TollgatectlPath -Value $exe -Scope Script
    $running = @(Get-Process -Name 'tollgatectl' -ErrorAction SilentlyContinue)
    if ($running.Count -gt 0) {
        throw "tollgatectl is already running (pid $(($running | ForEach-Object { $_.Id }) -join ', ')): stop it first, only one verdict service may connect."
    }
    $prefix = ''
    if ($Label) { $prefix = "[$Label] " }
    $workDir = Join-Path ([System.IO.Path]::GetTempPath()) ("tollgate-exercise-" + (Get-Date -Format 'yyyyMMdd-HHmmss'))
    [void](New-Item -ItemType Directory -Path $workDir -Force)
    $rules = Join-Path $workDir 'rules.toml'
    Write-ExerciseRules $rules
    $target443 = Format-Remote $TargetAddress 443
    $target80 = Format-Remote $TargetAddress 80

    Write-Step "${prefix}Counters before the exercise (Get-Counter)"
    $before = Get-CounterSnapshot
    $serve = $null
    try {
        # (a) fail-closed: driver loaded, no service.
        Write-Step "${prefix}(a) No verdict service: a new connection must get the default verdict (block)"
        $result = Test-TcpConnect $TargetAddress 443
        Add-Check -Name "${prefix}(a) no service: $target443 blocked (fail-closed)" -Passed ($result.Outcome -eq 'Blocked') -Detail "$($result.Outcome): $($result.Detail)"

        # (b) allow and block through the service.
        Write-Step "${prefix}(b) Verdicts from tollgatectl serve"
        $serve = Start-Serve -WorkDir $workDir -RulesPath $rules -Name "${prefix}(b) serve"
        if ($null -ne $serve) {
            $result = Test-TcpConnect $TargetAddress 443
            Add-Check -Name "${prefix}(b) $target443 allowed by rule allow-target-https" -Passed ($result.Outcome -eq 'Connected') -Detail "$($result.Outcome): $($result.Detail) (needs a route to $target443; see -TargetAddress)"
            $result = Test-TcpConnect $TargetAddress 80
            Add-Check -Name "${prefix}(b) $target80 blocked by rule block-http" -Passed ($result.Outcome -eq 'Blocked') -Detail "$($result.Outcome): $($result.Detail)"
            $line = Wait-ServeLine $serve (' connect ".*" ' + [regex]::Escape("$target443/tcp allow allow-target-https"))
            Add-Check -Name "${prefix}(b) serve printed the allow decision for $target443" -Passed ($null -ne $line) -Detail "$line"
            $line = Wait-ServeLine $serve (' connect ".*" ' + [regex]::Escape("$target80/tcp block block-http"))
            Add-Check -Name "${prefix}(b) serve printed the block decision for $target80" -Passed ($null -ne $line) -Detail "$line"
            try {
                Test-Connections
                Add-Check -Name "${prefix}(b) loopback connections allowed by rule allow-loopback" -Passed $true -Detail "$Connections per address"
            } catch {
                Add-Check -Name "${prefix}(b) loopback connections allowed by rule allow-loopback" -Passed $false -Detail $_.Exception.Message
            }
            # The stream callout: a request for a blocked name is dropped inline, after ALE
            # allowed the connection (rule allow-loopback); an allowed name goes through.
            $outcome = Test-StreamExchange 'www.allowed.tollgate.test'
            Add-Check -Name "${prefix}(b) stream: Host www.allowed.tollgate.test exchanged" -Passed ($outcome -eq 'Exchanged') -Detail $outcome
            $outcome = Test-StreamExchange 'www.blocked.tollgate.test'
            Add-Check -Name "${prefix}(b) stream: Host www.blocked.tollgate.test dropped by the driver's domain blocklist" -Passed ($outcome -eq 'Dropped') -Detail $outcome
            $line = Wait-ServeLine $serve ' flow \d+ identified http host:www\.blocked\.tollgate\.test .* dropped '
            Add-Check -Name "${prefix}(b) serve printed the dropped flow's event" -Passed ($null -ne $line) -Detail "$line"
            Show-ServeLog $serve
            Stop-Serve $serve
        }

        # (c) kill the service while connections are pended.
        Write-Step "${prefix}(c) Killing the verdict service while $PendConnections connections are pended"
        $serve = Start-Serve -WorkDir $workDir -RulesPath $rules -Name "${prefix}(c) slow serve" -DelaySeconds $VerdictDelaySeconds
        if ($null -ne $serve) {
            $clients = @()
            $tasks = @()
            for ($i = 0; $i -lt $PendConnections; $i++) {
                $ip = [System.Net.IPAddress]::Parse($TargetAddress)
                $client = New-Object System.Net.Sockets.TcpClient($ip.AddressFamily)
                $clients += $client
                $tasks += $client.ConnectAsync($ip, 443)
            }
            Write-Note "$PendConnections connects to $target443 started (allowed by the rules, but the service holds each batch $VerdictDelaySeconds s)"
            Start-Sleep -Milliseconds 1500
            $early = @($tasks | Where-Object { $_.IsCompleted })
            Add-Check -Name "${prefix}(c) connections are held while the service decides" -Passed ($early.Count -eq 0) -Detail "$($early.Count) of $PendConnections completed before the kill"
            $killWatch = [System.Diagnostics.Stopwatch]::StartNew()
            Stop-Serve $serve
            $serve = $null
            $doneAt = @{}
            while ($killWatch.Elapsed.TotalSeconds -lt 15 -and $doneAt.Count -lt $tasks.Count) {
                for ($i = 0; $i -lt $tasks.Count; $i++) {
                    if (-not $doneAt.ContainsKey($i) -and $tasks[$i].IsCompleted) { $doneAt[$i] = $killWatch.ElapsedMilliseconds }
                }
                Start-Sleep -Milliseconds 50
            }
            $outcomes = @($tasks | ForEach-Object { Get-ConnectOutcome $_ })
            $blocked = @($outcomes | Where-Object { $_.Outcome -eq 'Blocked' })
            $summary = ($outcomes | Group-Object -Property Outcome | ForEach-Object { "$($_.Count) $($_.Name)" }) -join ', '
            Add-Check -Name "${prefix}(c) every held connection failed with the default verdict after the kill" -Passed ($blocked.Count -eq $tasks.Count) -Detail $summary
            $slowest = 0
            foreach ($ms in $doneAt.Values) { if ($ms -gt $slowest) { $slowest = $ms } }
            Add-Check -Name "${prefix}(c) resolved at service exit, before the $PendTimeoutSeconds s pend timeout" -Passed ($doneAt.Count -eq $tasks.Count -and $slowest -lt 3000) -Detail "$($doneAt.Count) completed, the last $slowest ms after the kill"
            foreach ($client in $clients) { $client.Close() }
            Test-DriverRunning "${prefix}(c) after the service was killed mid-pend"
        }

        # (d) kill a client whose connect is pended.
        Write-Step "${prefix}(d) Killing a client process while its connect is pended"
        $serve = Start-Serve -WorkDir $workDir -RulesPath $rules -Name "${prefix}(d) slow serve" -DelaySeconds $VerdictDelaySeconds
        if ($null -ne $serve) {
            $client = Start-ConnectingClient $workDir
            Start-Sleep -Milliseconds 1000
            $alive = -not $client.HasExited
            Add-Check -Name "${prefix}(d) the client is waiting on its connect" -Passed $alive -Detail "pid $($client.Id)"
            Stop-Process -Id $client.Id -Force -ErrorAction SilentlyContinue
            [void]$client.WaitForExit(15000)
            Write-Note "client killed; waiting $($VerdictDelaySeconds + 2) s for the service's (late) answer"
            Start-Sleep -Seconds ($VerdictDelaySeconds + 2)
            Add-Check -Name "${prefix}(d) the service survived the client's death" -Passed (-not $serve.Process.HasExited) -Detail "pid $($serve.Process.Id)"
            Test-DriverRunning "${prefix}(d) after a client was killed mid-pend"
            $late = @(((Read-SharedText $serve.Out) -split "`r?`n") | Where-Object { $_ -match '\[(late|unknown-id|being-resolved)\]$' })
            Write-Note "INFO: $($late.Count) verdict(s) the driver no longer wanted (expected >= 1 when the teardown resolved the pend first):"
            foreach ($line in $late) { Write-Note "  $line" }
            Show-ServeLog $serve
            Stop-Serve $serve
            $serve = $null

            Write-Step "${prefix}(d) Restarting the service: allowed connections must work again"
            $serve = Start-Serve -WorkDir $workDir -RulesPath $rules -Name "${prefix}(d) restarted serve"
            if ($null -ne $serve) {
                $result = Test-TcpConnect $TargetAddress 443
                Add-Check -Name "${prefix}(d) $target443 allowed again after the service restarts" -Passed ($result.Outcome -eq 'Connected') -Detail "$($result.Outcome): $($result.Detail)"
            }
        }

        # (e) state and counters.
        Write-Step "${prefix}(e) State after the exercise"
        Test-DriverRunning "${prefix}(e) at the end of the exercise"
        if ($null -ne $serve) {
            $serve.Process.Refresh()
            $memory = [math]::Round($serve.Process.WorkingSet64 / 1MB, 1)
            Write-Note "tollgatectl pid $($serve.Process.Id): working set $memory MiB"
        }
        Write-Step "${prefix}Counters after the exercise (Get-Counter)"
        Write-CounterDelta $before (Get-CounterSnapshot)
        [void](Invoke-Native -FilePath 'sc.exe' -Arguments @('query', $ServiceName))
    } finally {
        Stop-AllServe
    }
    Write-Note "logs and rules kept in $workDir"
}

# The fail-closed check alone, for Install/Verify runs without -TollgatectlPath.
function Invoke-FailClosedCheck([string] $Label = '') {
    $prefix = ''
    if ($Label) { $prefix = "[$Label] " }
    Write-Step "${prefix}No verdict service: a new connection must get the default verdict (block)"
    $result = Test-TcpConnect $TargetAddress 443
    Add-Check -Name "${prefix}no service: $(Format-Remote $TargetAddress 443) blocked (fail-closed)" -Passed ($result.Outcome -eq 'Blocked') -Detail "$($result.Outcome): $($result.Detail)"
    Write-Warning 'No -TollgatectlPath: the verdict checks (b)-(e) were skipped.'
}

function Invoke-DriverChecks([string] $Label = '') {
    if ($TollgatectlPath) { Invoke-ExerciseChecks -Label $Label } else { Invoke-FailClosedCheck -Label $Label }
}

function Invoke-Exercise {
    if (-not $TollgatectlPath) { throw 'Exercise needs -TollgatectlPath <path of tollgatectl.exe>.' }
    Assert-TollgatectlPath
    Assert-Administrator
    $state = Get-ServiceState
    if ($null -eq $state) { throw "Service '$ServiceName' does not exist. Run -Phase Install first." }
    $wasRunning = ($state -eq $SERVICE_RUNNING)
    if (-not $wasRunning) { [void](Start-Tollgate) }
    try {
        Invoke-ExerciseChecks
    } finally {
        Stop-AllServe
        if ($wasRunning) {
            Write-Warning 'The driver was running before this phase and is left running: with no verdict service, new connections are blocked.'
        } else {
            Stop-Tollgate
        }
    }
    Write-Step 'Exercise phase finished'
}

function Assert-TollgatectlPath {
    if ($TollgatectlPath -and -not (Test-Path -LiteralPath $TollgatectlPath -PathType Leaf)) {
        throw "-TollgatectlPath: $TollgatectlPath does not exist (build it with: cargo build --release -p tollgatectl --target x86_64-pc-windows-msvc)."
    }
    if (-not $TollgatectlPath) {
        Write-Warning 'No -TollgatectlPath: only the fail-closed check runs; the verdict checks need tollgatectl.exe.'
    }
}

function Invoke-Install {
    if (-not $PackageDir) { throw 'Install needs -PackageDir <folder with tollgate.inf, .sys, .cat, .cer>.' }
    Assert-TollgatectlPath
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
    try {
        Invoke-DriverChecks -Label 'install'
    } finally {
        Stop-AllServe
    }
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

    Write-Step 'Install phase finished (the check summary follows)'
    Write-Note 'Driver Verifier settings take effect only after a reboot. Reboot now, then run:'
    Write-Note "  .\Test-Tollgate.ps1 -Phase Verify"
}

function Invoke-Verify {
    Assert-TollgatectlPath
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
            try {
                Invoke-DriverChecks -Label "verify cycle $i"
            } finally {
                Stop-AllServe
            }
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
    Write-Step 'Verify phase finished (the check summary follows)'
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

if ($Phase -ne 'Uninstall') { Write-FailClosedWarning }
$failures = 0
try {
    switch ($Phase) {
        'Install' { Invoke-Install }
        'Verify' { Invoke-Verify }
        'Exercise' { Invoke-Exercise }
        'Uninstall' { Invoke-Uninstall }
    }
} finally {
    Stop-AllServe
    $failures = Write-CheckSummary
}
if ($failures -gt 0) {
    Write-Host ''
    Write-Host "$failures check(s) FAILED." -ForegroundColor Red
    exit 1
}
