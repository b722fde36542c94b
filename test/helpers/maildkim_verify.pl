#!/usr/bin/perl
# Verifies every DKIM-Signature of a message with Perl's Mail::DKIM.
# Usage: perl maildkim_verify.pl KEYS MESSAGE_FILE
#   KEYS is a JSON file of TXT records by name (answered locally, never from
#   the network), or dns:HOST:PORT (fetched over UDP with Net::DNS from that
#   server, no system resolver).
# Prints a JSON list, one object per signature, top to bottom:
# {"result", "detail", "domain", "algorithm"}; result is Mail::DKIM's (pass,
# fail, invalid, temperror, none ...). Debian 12's Mail::DKIM (1.20230212)
# has no Ed25519: those come out "invalid" (unsupported algorithm).
use strict;
use warnings;
use JSON::PP;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS;

my ($keys, $message_file) = @ARGV;
die "usage: $0 RECORDS_JSON|dns:HOST:PORT MESSAGE_FILE\n" unless defined $message_file;

if ($keys =~ /^dns:(.+):(\d+)$/) {
    Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(
        config_file => '/dev/null',
        nameservers => [$1],
        port        => $2,
        recurse     => 1,
        defnames    => 0,
        dnsrch      => 0,
        usevc       => 0,
        udp_timeout => 3,
        retry       => 2,
    ));
} else {
    open(my $rf, '<:raw', $keys) or die "$keys: $!\n";
    my %records;
    {
        local $/;
        my $all = decode_json(<$rf>);
        %records = map { ((lc $_) =~ s/\.$//r, $all->{$_}) } keys %$all;
    }
    close $rf;
    no warnings 'redefine';
    *Mail::DKIM::DNS::query = sub {
        my ($domain, $type) = @_;
        my $key = (lc $domain) =~ s/\.$//r;
        if (uc $type eq 'TXT' && exists $records{$key}) {
            $@ = 'NOERROR';
            # A TXT string holds at most 255 octets: split long keys like a zone file would.
            my @parts = unpack('(a255)*', $records{$key});
            return Net::DNS::RR->new(name => $domain, type => 'TXT', txtdata => \@parts);
        }
        $@ = 'NXDOMAIN';
        return;
    };
}

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
