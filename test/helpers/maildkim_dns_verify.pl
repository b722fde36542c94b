#!/usr/bin/perl
# Verifies every DKIM-Signature of a message with Perl's Mail::DKIM, fetching
# keys over UDP from the DNS server at HOST:PORT (Net::DNS, no system resolver).
# Usage: perl maildkim_dns_verify.pl HOST:PORT MESSAGE_FILE
# Prints a JSON list, one object per signature, top to bottom:
# {"result", "detail", "domain", "algorithm"}; result is Mail::DKIM's
# (pass, fail, invalid, temperror, none ...). Debian 12's Mail::DKIM
# (1.20230212) has no Ed25519: those come out "invalid" (unsupported algorithm).
use strict;
use warnings;
use JSON::PP;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS;

my ($nameserver, $message_file) = @ARGV;
die "usage: $0 HOST:PORT MESSAGE_FILE\n" unless defined $message_file;
my ($host, $port) = $nameserver =~ /^(.+):(\d+)$/ or die "nameserver must be HOST:PORT, not $nameserver\n";

my $resolver = Net::DNS::Resolver->new(
    config_file => '/dev/null',
    nameservers => [$host],
    port        => $port,
    recurse     => 1,
    defnames    => 0,
    dnsrch      => 0,
    usevc       => 0,
    udp_timeout => 3,
    retry       => 2,
);
Mail::DKIM::DNS::resolver($resolver);

open(my $mf, '<:raw', $message_file) or die "$message_file: $!\n";
my $dkim = Mail::DKIM::Verifier->new();
while (read($mf, my $buf, 65536)) {
    $dkim->PRINT($buf);
}
close $mf;
$dkim->CLOSE();

my @results;
for my $sig ($dkim->signatures) {
    my $detail = $sig->result_detail // '';
    print STDERR "signature d=" . ($sig->domain // '?') . ": $detail\n" unless $sig->result eq 'pass';
    push @results, {
        result    => $sig->result,
        detail    => $detail,
        domain    => $sig->domain // '',
        algorithm => $sig->algorithm // '',
    };
}
print encode_json(\@results), "\n";
