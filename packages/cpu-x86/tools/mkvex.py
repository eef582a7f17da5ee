# One-off helper that wrote data/05-vex.txt (kept for reference; the .txt is the source of truth).
L=["# VEX-encoded instructions (SDM Vol. 2 2.3 and the instruction pages): BMI1/BMI2 in full, and the",
"# AVX/AVX2/FMA/F16C forms so that their length is exact (a #UD raised while AVX is not exposed",
"# still reports the right length). VEX.L: 128/L0, 256/L1, LIG = ignored, LZ = must be 0.",
"# VEX.W: W0/W1 = required, WIG = ignored. 256-bit integer forms are AVX2.",
"# mnemonic | encoding | operands | flags | cpuid | attrs",""]
def row(*c): L.append(" | ".join(c).rstrip(" |"))
def v(name, enc, ops, feat="AVX", flags="", attrs=""):
    row(name, enc, ops, flags, feat, attrs)
def both(name, pp, mp, op, ops, w="WIG", feat="AVX", int2=False):
    # one record for any L, or two when the 256-bit form is AVX2
    if int2:
        v(name, f"VEX.128.{pp}.{mp}.{w} {op} /r", ops, feat)
        v(name, f"VEX.256.{pp}.{mp}.{w} {op} /r", ops, "AVX2")
    else:
        v(name, f"VEX.{pp}.{mp}.{w} {op} /r", ops, feat)
NDS="Vx:w Hx Wx"; TWO="Vx:w Wx"
L.append("# VEX.0F")
both("VMOVUPS","NP","0F","10",TWO); both("VMOVUPD","66","0F","10",TWO)
both("VMOVUPS","NP","0F","11","Wx:w Vx"); both("VMOVUPD","66","0F","11","Wx:w Vx")
for pp,n,m in [("F3","VMOVSS","Md"),("F2","VMOVSD","Mq")]:
    v(n,f"VEX.LIG.{pp}.0F.WIG 10 /r",f"Vdq:w {m}"); v(n,f"VEX.LIG.{pp}.0F.WIG 10 /r","Vdq:w Hdq Udq")
    v(n,f"VEX.LIG.{pp}.0F.WIG 11 /r",f"{m}:w Vdq"); v(n,f"VEX.LIG.{pp}.0F.WIG 11 /r","Udq:w Hdq Vdq")
v("VMOVLPS","VEX.128.NP.0F.WIG 12 /r","Vdq:w Hdq Mq"); v("VMOVHLPS","VEX.128.NP.0F.WIG 12 /r","Vdq:w Hdq Udq")
v("VMOVLPD","VEX.128.66.0F.WIG 12 /r","Vdq:w Hdq Mq"); both("VMOVSLDUP","F3","0F","12",TWO); both("VMOVDDUP","F2","0F","12",TWO)
v("VMOVLPS","VEX.128.NP.0F.WIG 13 /r","Mq:w Vdq"); v("VMOVLPD","VEX.128.66.0F.WIG 13 /r","Mq:w Vdq")
both("VUNPCKLPS","NP","0F","14",NDS); both("VUNPCKLPD","66","0F","14",NDS); both("VUNPCKHPS","NP","0F","15",NDS); both("VUNPCKHPD","66","0F","15",NDS)
v("VMOVHPS","VEX.128.NP.0F.WIG 16 /r","Vdq:w Hdq Mq"); v("VMOVLHPS","VEX.128.NP.0F.WIG 16 /r","Vdq:w Hdq Udq")
v("VMOVHPD","VEX.128.66.0F.WIG 16 /r","Vdq:w Hdq Mq"); both("VMOVSHDUP","F3","0F","16",TWO)
v("VMOVHPS","VEX.128.NP.0F.WIG 17 /r","Mq:w Vdq"); v("VMOVHPD","VEX.128.66.0F.WIG 17 /r","Mq:w Vdq")
both("VMOVAPS","NP","0F","28",TWO); both("VMOVAPD","66","0F","28",TWO); both("VMOVAPS","NP","0F","29","Wx:w Vx"); both("VMOVAPD","66","0F","29","Wx:w Vx")
v("VCVTSI2SS","VEX.LIG.F3.0F.WIG 2A /r","Vdq:w Hdq Ey"); v("VCVTSI2SD","VEX.LIG.F2.0F.WIG 2A /r","Vdq:w Hdq Ey")
v("VMOVNTPS","VEX.NP.0F.WIG 2B /r","Mx:w Vx"); v("VMOVNTPD","VEX.66.0F.WIG 2B /r","Mx:w Vx")
for op,a,b in [("2C","VCVTTSS2SI","VCVTTSD2SI"),("2D","VCVTSS2SI","VCVTSD2SI")]:
    v(a,f"VEX.LIG.F3.0F.WIG {op} /r","Gy:w Wd"); v(b,f"VEX.LIG.F2.0F.WIG {op} /r","Gy:w Wq")
for op,a,b in [("2E","VUCOMISS","VUCOMISD"),("2F","VCOMISS","VCOMISD")]:
    v(a,f"VEX.LIG.NP.0F.WIG {op} /r","Vdq Wd",flags="w:zpc 0:osa"); v(b,f"VEX.LIG.66.0F.WIG {op} /r","Vdq Wq",flags="w:zpc 0:osa")
v("VMOVMSKPS","VEX.NP.0F.WIG 50 /r","Gy:w Ux"); v("VMOVMSKPD","VEX.66.0F.WIG 50 /r","Gy:w Ux")
both("VSQRTPS","NP","0F","51",TWO); both("VSQRTPD","66","0F","51",TWO)
v("VSQRTSS","VEX.LIG.F3.0F.WIG 51 /r","Vdq:w Hdq Wd"); v("VSQRTSD","VEX.LIG.F2.0F.WIG 51 /r","Vdq:w Hdq Wq")
both("VRSQRTPS","NP","0F","52",TWO); v("VRSQRTSS","VEX.LIG.F3.0F.WIG 52 /r","Vdq:w Hdq Wd")
both("VRCPPS","NP","0F","53",TWO); v("VRCPSS","VEX.LIG.F3.0F.WIG 53 /r","Vdq:w Hdq Wd")
for op,n in [("54","VAND"),("55","VANDN"),("56","VOR"),("57","VXOR")]:
    both(n+"PS","NP","0F",op,NDS); both(n+"PD","66","0F",op,NDS)
for op,n in [("58","VADD"),("59","VMUL"),("5C","VSUB"),("5D","VMIN"),("5E","VDIV"),("5F","VMAX")]:
    both(n+"PS","NP","0F",op,NDS); both(n+"PD","66","0F",op,NDS)
    v(n+"SS",f"VEX.LIG.F3.0F.WIG {op} /r","Vdq:w Hdq Wd"); v(n+"SD",f"VEX.LIG.F2.0F.WIG {op} /r","Vdq:w Hdq Wq")
both("VCVTPS2PD","NP","0F","5A",TWO); both("VCVTPD2PS","66","0F","5A","Vdq:w Wx")
v("VCVTSS2SD","VEX.LIG.F3.0F.WIG 5A /r","Vdq:w Hdq Wd"); v("VCVTSD2SS","VEX.LIG.F2.0F.WIG 5A /r","Vdq:w Hdq Wq")
both("VCVTDQ2PS","NP","0F","5B",TWO); both("VCVTPS2DQ","66","0F","5B",TWO); both("VCVTTPS2DQ","F3","0F","5B",TWO)
for i,n in enumerate(["VPUNPCKLBW","VPUNPCKLWD","VPUNPCKLDQ","VPACKSSWB","VPCMPGTB","VPCMPGTW","VPCMPGTD","VPACKUSWB","VPUNPCKHBW","VPUNPCKHWD","VPUNPCKHDQ","VPACKSSDW","VPUNPCKLQDQ","VPUNPCKHQDQ"]):
    both(n,"66","0F",f"{0x60+i:02X}",NDS,int2=True)
v("VMOVD","VEX.128.66.0F.W0 6E /r","Vdq:w Ed"); v("VMOVQ","VEX.128.66.0F.W1 6E /r","Vdq:w Eq",attrs="o64"); v("VMOVD","VEX.128.66.0F.W1 6E /r","Vdq:w Ed",attrs="i64")
both("VMOVDQA","66","0F","6F",TWO); both("VMOVDQU","F3","0F","6F",TWO)
for pp,n in [("66","VPSHUFD"),("F3","VPSHUFHW"),("F2","VPSHUFLW")]: both(n,pp,"0F","70",TWO+" Ib",int2=True)
for op,grp in [("71",[(2,"VPSRLW"),(4,"VPSRAW"),(6,"VPSLLW")]),("72",[(2,"VPSRLD"),(4,"VPSRAD"),(6,"VPSLLD")]),("73",[(2,"VPSRLQ"),(3,"VPSRLDQ"),(6,"VPSLLQ"),(7,"VPSLLDQ")])]:
    for r,n in grp:
        v(n,f"VEX.128.66.0F.WIG {op} /{r}","Hx:w Ux Ib"); v(n,f"VEX.256.66.0F.WIG {op} /{r}","Hx:w Ux Ib","AVX2")
for i,n in enumerate(["VPCMPEQB","VPCMPEQW","VPCMPEQD"]): both(n,"66","0F",f"{0x74+i:02X}",NDS,int2=True)
v("VZEROUPPER","VEX.128.NP.0F.WIG 77",""); v("VZEROALL","VEX.256.NP.0F.WIG 77","")
both("VHADDPD","66","0F","7C",NDS); both("VHADDPS","F2","0F","7C",NDS); both("VHSUBPD","66","0F","7D",NDS); both("VHSUBPS","F2","0F","7D",NDS)
v("VMOVD","VEX.128.66.0F.W0 7E /r","Ed:w Vdq"); v("VMOVQ","VEX.128.66.0F.W1 7E /r","Eq:w Vdq",attrs="o64"); v("VMOVD","VEX.128.66.0F.W1 7E /r","Ed:w Vdq",attrs="i64")
v("VMOVQ","VEX.128.F3.0F.WIG 7E /r","Vdq:w Wq")
both("VMOVDQA","66","0F","7F","Wx:w Vx"); both("VMOVDQU","F3","0F","7F","Wx:w Vx")
both("VCMPPS","NP","0F","C2",NDS+" Ib"); both("VCMPPD","66","0F","C2",NDS+" Ib")
v("VCMPSS","VEX.LIG.F3.0F.WIG C2 /r","Vdq:w Hdq Wd Ib"); v("VCMPSD","VEX.LIG.F2.0F.WIG C2 /r","Vdq:w Hdq Wq Ib")
v("VLDMXCSR","VEX.LZ.NP.0F.WIG AE /2","Md"); v("VSTMXCSR","VEX.LZ.NP.0F.WIG AE /3","Md:w")
v("VPINSRW","VEX.128.66.0F.WIG C4 /r","Vdq:w Hdq Ry Ib"); v("VPINSRW","VEX.128.66.0F.WIG C4 /r","Vdq:w Hdq Mw Ib")
v("VPEXTRW","VEX.128.66.0F.WIG C5 /r","Gy:w Udq Ib")
both("VSHUFPS","NP","0F","C6",NDS+" Ib"); both("VSHUFPD","66","0F","C6",NDS+" Ib")
both("VADDSUBPD","66","0F","D0",NDS); both("VADDSUBPS","F2","0F","D0",NDS)
for i,n in enumerate(["VPSRLW","VPSRLD","VPSRLQ"]): both(n,"66","0F",f"{0xD1+i:02X}","Vx:w Hx Wdq",int2=True)
both("VPADDQ","66","0F","D4",NDS,int2=True); both("VPMULLW","66","0F","D5",NDS,int2=True)
v("VMOVQ","VEX.128.66.0F.WIG D6 /r","Wq:w Vdq")
v("VPMOVMSKB","VEX.128.66.0F.WIG D7 /r","Gy:w Ux"); v("VPMOVMSKB","VEX.256.66.0F.WIG D7 /r","Gy:w Ux","AVX2")
for i,n in enumerate(["VPSUBUSB","VPSUBUSW","VPMINUB","VPAND","VPADDUSB","VPADDUSW","VPMAXUB","VPANDN","VPAVGB"]): both(n,"66","0F",f"{0xD8+i:02X}",NDS,int2=True)
for i,n in enumerate(["VPSRAW","VPSRAD"]): both(n,"66","0F",f"{0xE1+i:02X}","Vx:w Hx Wdq",int2=True)
for i,n in enumerate(["VPAVGW","VPMULHUW","VPMULHW"]): both(n,"66","0F",f"{0xE3+i:02X}",NDS,int2=True)
both("VCVTTPD2DQ","66","0F","E6","Vdq:w Wx"); both("VCVTDQ2PD","F3","0F","E6",TWO); both("VCVTPD2DQ","F2","0F","E6","Vdq:w Wx")
v("VMOVNTDQ","VEX.128.66.0F.WIG E7 /r","Mx:w Vx"); v("VMOVNTDQ","VEX.256.66.0F.WIG E7 /r","Mx:w Vx")
for i,n in enumerate(["VPSUBSB","VPSUBSW","VPMINSW","VPOR","VPADDSB","VPADDSW","VPMAXSW","VPXOR"]): both(n,"66","0F",f"{0xE8+i:02X}",NDS,int2=True)
v("VLDDQU","VEX.F2.0F.WIG F0 /r","Vx:w Mx")
for i,n in enumerate(["VPSLLW","VPSLLD","VPSLLQ"]): both(n,"66","0F",f"{0xF1+i:02X}","Vx:w Hx Wdq",int2=True)
for i,n in enumerate(["VPMULUDQ","VPMADDWD","VPSADBW"]): both(n,"66","0F",f"{0xF4+i:02X}",NDS,int2=True)
v("VMASKMOVDQU","VEX.128.66.0F.WIG F7 /r","Vdq Udq")
for i,n in enumerate(["VPSUBB","VPSUBW","VPSUBD","VPSUBQ","VPADDB","VPADDW","VPADDD"]): both(n,"66","0F",f"{0xF8+i:02X}",NDS,int2=True)

L.append(""); L.append("# VEX.0F38")
for i,n in enumerate(["VPSHUFB","VPHADDW","VPHADDD","VPHADDSW","VPMADDUBSW","VPHSUBW","VPHSUBD","VPHSUBSW","VPSIGNB","VPSIGNW","VPSIGND","VPMULHRSW"]):
    both(n,"66","0F38",f"{i:02X}",NDS,int2=True)
both("VPERMILPS","66","0F38","0C",NDS,w="W0"); both("VPERMILPD","66","0F38","0D",NDS,w="W0")
both("VTESTPS","66","0F38","0E","Vx Wx",w="W0"); both("VTESTPD","66","0F38","0F","Vx Wx",w="W0")
L[-1]+=""; 
for n in ["VTESTPS","VTESTPD"]: pass
both("VCVTPH2PS","66","0F38","13","Vx:w Wdq",w="W0",feat="F16C")
v("VPERMPS","VEX.256.66.0F38.W0 16 /r","Vx:w Hx Wx","AVX2")
both("VPTEST","66","0F38","17","Vx Wx")
v("VBROADCASTSS","VEX.66.0F38.W0 18 /r","Vx:w Md"); v("VBROADCASTSS","VEX.66.0F38.W0 18 /r","Vx:w Udq","AVX2")
v("VBROADCASTSD","VEX.256.66.0F38.W0 19 /r","Vx:w Mq"); v("VBROADCASTSD","VEX.256.66.0F38.W0 19 /r","Vx:w Udq","AVX2")
v("VBROADCASTF128","VEX.256.66.0F38.W0 1A /r","Vx:w Mdq")
for op,n in [("1C","VPABSB"),("1D","VPABSW"),("1E","VPABSD")]: both(n,"66","0F38",op,TWO,int2=True)
for base,pfx in [(0x20,"VPMOVSX"),(0x30,"VPMOVZX")]:
    for i,s in enumerate(["BW","BD","BQ","WD","WQ","DQ"]): both(pfx+s,"66","0F38",f"{base+i:02X}","Vx:w Wdq",int2=True)
both("VPMULDQ","66","0F38","28",NDS,int2=True); both("VPCMPEQQ","66","0F38","29",NDS,int2=True)
v("VMOVNTDQA","VEX.128.66.0F38.WIG 2A /r","Vx:w Mx"); v("VMOVNTDQA","VEX.256.66.0F38.WIG 2A /r","Vx:w Mx","AVX2")
both("VPACKUSDW","66","0F38","2B",NDS,int2=True)
v("VMASKMOVPS","VEX.66.0F38.W0 2C /r","Vx:w Hx Mx"); v("VMASKMOVPD","VEX.66.0F38.W0 2D /r","Vx:w Hx Mx")
v("VMASKMOVPS","VEX.66.0F38.W0 2E /r","Mx:w Hx Vx"); v("VMASKMOVPD","VEX.66.0F38.W0 2F /r","Mx:w Hx Vx")
v("VPERMD","VEX.256.66.0F38.W0 36 /r","Vx:w Hx Wx","AVX2")
both("VPCMPGTQ","66","0F38","37",NDS,int2=True)
for i,n in enumerate(["VPMINSB","VPMINSD","VPMINUW","VPMINUD","VPMAXSB","VPMAXSD","VPMAXUW","VPMAXUD","VPMULLD"]): both(n,"66","0F38",f"{0x38+i:02X}",NDS,int2=True)
v("VPHMINPOSUW","VEX.128.66.0F38.WIG 41 /r","Vdq:w Wdq")
for op,d,q in [("45","VPSRLVD","VPSRLVQ"),("47","VPSLLVD","VPSLLVQ")]:
    v(d,f"VEX.66.0F38.W0 {op} /r",NDS,"AVX2"); v(q,f"VEX.66.0F38.W1 {op} /r",NDS,"AVX2")
v("VPSRAVD","VEX.66.0F38.W0 46 /r",NDS,"AVX2")
v("VPBROADCASTD","VEX.66.0F38.W0 58 /r","Vx:w Wd","AVX2"); v("VPBROADCASTQ","VEX.66.0F38.W0 59 /r","Vx:w Wq","AVX2")
v("VBROADCASTI128","VEX.256.66.0F38.W0 5A /r","Vx:w Mdq","AVX2")
v("VPBROADCASTB","VEX.66.0F38.W0 78 /r","Vx:w Wb","AVX2"); v("VPBROADCASTW","VEX.66.0F38.W0 79 /r","Vx:w Ww","AVX2")
v("VPMASKMOVD","VEX.66.0F38.W0 8C /r","Vx:w Hx Mx","AVX2"); v("VPMASKMOVQ","VEX.66.0F38.W1 8C /r","Vx:w Hx Mx","AVX2")
v("VPMASKMOVD","VEX.66.0F38.W0 8E /r","Mx:w Hx Vx","AVX2"); v("VPMASKMOVQ","VEX.66.0F38.W1 8E /r","Mx:w Hx Vx","AVX2")
for op,d,q in [("90","VPGATHERDD","VPGATHERDQ"),("91","VPGATHERQD","VPGATHERQQ"),("92","VGATHERDPS","VGATHERDPD"),("93","VGATHERQPS","VGATHERQPD")]:
    v(d,f"VEX.66.0F38.W0 {op} /r","Vx:rw Mx Hx:rw","AVX2","","vsib"); v(q,f"VEX.66.0F38.W1 {op} /r","Vx:rw Mx Hx:rw","AVX2","","vsib")
fma=[(0x6,"VFMADDSUB","P"),(0x7,"VFMSUBADD","P"),(0x8,"VFMADD","P"),(0x9,"VFMADD","S"),(0xA,"VFMSUB","P"),(0xB,"VFMSUB","S"),(0xC,"VFNMADD","P"),(0xD,"VFNMADD","S"),(0xE,"VFNMSUB","P"),(0xF,"VFNMSUB","S")]
for hi,order in [(0x90,"132"),(0xA0,"213"),(0xB0,"231")]:
    for lo,n,k in fma:
        op=f"{hi+lo:02X}"
        if k=="P":
            v(f"{n}{order}PS",f"VEX.66.0F38.W0 {op} /r","Vx:rw Hx Wx","FMA"); v(f"{n}{order}PD",f"VEX.66.0F38.W1 {op} /r","Vx:rw Hx Wx","FMA")
        else:
            v(f"{n}{order}SS",f"VEX.LIG.66.0F38.W0 {op} /r","Vdq:rw Hdq Wd","FMA"); v(f"{n}{order}SD",f"VEX.LIG.66.0F38.W1 {op} /r","Vdq:rw Hdq Wq","FMA")
v("VAESIMC","VEX.128.66.0F38.WIG DB /r","Vdq:w Wdq","AES")
for i,n in enumerate(["VAESENC","VAESENCLAST","VAESDEC","VAESDECLAST"]): v(n,f"VEX.128.66.0F38.WIG {0xDC+i:02X} /r","Vdq:w Hdq Wdq","AES")
L.append(""); L.append("# BMI1 / BMI2 (VEX.LZ; W1 selects 64-bit operands in 64-bit mode)")
v("ANDN","VEX.LZ.NP.0F38.WIG F2 /r","Gy:w By Ey","BMI1","0:oc w:sz u:ap")
v("BLSR","VEX.LZ.NP.0F38.WIG F3 /1","By:w Ey","BMI1","0:o w:szc u:ap")
v("BLSMSK","VEX.LZ.NP.0F38.WIG F3 /2","By:w Ey","BMI1","0:oz w:sc u:ap")
v("BLSI","VEX.LZ.NP.0F38.WIG F3 /3","By:w Ey","BMI1","0:o w:szc u:ap")
v("BZHI","VEX.LZ.NP.0F38.WIG F5 /r","Gy:w Ey By","BMI2","0:o w:szc u:ap")
v("PEXT","VEX.LZ.F3.0F38.WIG F5 /r","Gy:w By Ey","BMI2")
v("PDEP","VEX.LZ.F2.0F38.WIG F5 /r","Gy:w By Ey","BMI2")
v("MULX","VEX.LZ.F2.0F38.WIG F6 /r","Gy:w By:w Ey","BMI2")
v("BEXTR","VEX.LZ.NP.0F38.WIG F7 /r","Gy:w Ey By","BMI1","0:oc w:z u:sap")
v("SHLX","VEX.LZ.66.0F38.WIG F7 /r","Gy:w Ey By","BMI2")
v("SARX","VEX.LZ.F3.0F38.WIG F7 /r","Gy:w Ey By","BMI2")
v("SHRX","VEX.LZ.F2.0F38.WIG F7 /r","Gy:w Ey By","BMI2")
v("RORX","VEX.LZ.F2.0F3A.WIG F0 /r","Gy:w Ey Ib","BMI2")
L.append(""); L.append("# VEX.0F3A")
v("VPERMQ","VEX.256.66.0F3A.W1 00 /r","Vx:w Wx Ib","AVX2"); v("VPERMPD","VEX.256.66.0F3A.W1 01 /r","Vx:w Wx Ib","AVX2")
v("VPBLENDD","VEX.66.0F3A.W0 02 /r",NDS+" Ib","AVX2")
both("VPERMILPS","66","0F3A","04",TWO+" Ib",w="W0"); both("VPERMILPD","66","0F3A","05",TWO+" Ib",w="W0")
v("VPERM2F128","VEX.256.66.0F3A.W0 06 /r",NDS+" Ib")
both("VROUNDPS","66","0F3A","08",TWO+" Ib"); both("VROUNDPD","66","0F3A","09",TWO+" Ib")
v("VROUNDSS","VEX.LIG.66.0F3A.WIG 0A /r","Vdq:w Hdq Wd Ib"); v("VROUNDSD","VEX.LIG.66.0F3A.WIG 0B /r","Vdq:w Hdq Wq Ib")
both("VBLENDPS","66","0F3A","0C",NDS+" Ib"); both("VBLENDPD","66","0F3A","0D",NDS+" Ib")
both("VPBLENDW","66","0F3A","0E",NDS+" Ib",int2=True); both("VPALIGNR","66","0F3A","0F",NDS+" Ib",int2=True)
v("VPEXTRB","VEX.128.66.0F3A.WIG 14 /r","Ry:w Vdq Ib"); v("VPEXTRB","VEX.128.66.0F3A.WIG 14 /r","Mb:w Vdq Ib")
v("VPEXTRW","VEX.128.66.0F3A.WIG 15 /r","Ry:w Vdq Ib"); v("VPEXTRW","VEX.128.66.0F3A.WIG 15 /r","Mw:w Vdq Ib")
v("VPEXTRD","VEX.128.66.0F3A.W0 16 /r","Ed:w Vdq Ib"); v("VPEXTRQ","VEX.128.66.0F3A.W1 16 /r","Eq:w Vdq Ib",attrs="o64"); v("VPEXTRD","VEX.128.66.0F3A.W1 16 /r","Ed:w Vdq Ib",attrs="i64")
v("VEXTRACTPS","VEX.128.66.0F3A.WIG 17 /r","Ed:w Vdq Ib")
v("VINSERTF128","VEX.256.66.0F3A.W0 18 /r","Vx:w Hx Wdq Ib"); v("VEXTRACTF128","VEX.256.66.0F3A.W0 19 /r","Wdq:w Vx Ib")
v("VCVTPS2PH","VEX.66.0F3A.W0 1D /r","Wdq:w Vx Ib","F16C")
v("VPINSRB","VEX.128.66.0F3A.WIG 20 /r","Vdq:w Hdq Ry Ib"); v("VPINSRB","VEX.128.66.0F3A.WIG 20 /r","Vdq:w Hdq Mb Ib")
v("VINSERTPS","VEX.128.66.0F3A.WIG 21 /r","Vdq:w Hdq Udq Ib"); v("VINSERTPS","VEX.128.66.0F3A.WIG 21 /r","Vdq:w Hdq Md Ib")
v("VPINSRD","VEX.128.66.0F3A.W0 22 /r","Vdq:w Hdq Ed Ib"); v("VPINSRQ","VEX.128.66.0F3A.W1 22 /r","Vdq:w Hdq Eq Ib",attrs="o64"); v("VPINSRD","VEX.128.66.0F3A.W1 22 /r","Vdq:w Hdq Ed Ib",attrs="i64")
v("VINSERTI128","VEX.256.66.0F3A.W0 38 /r","Vx:w Hx Wdq Ib","AVX2"); v("VEXTRACTI128","VEX.256.66.0F3A.W0 39 /r","Wdq:w Vx Ib","AVX2")
both("VDPPS","66","0F3A","40",NDS+" Ib"); v("VDPPD","VEX.128.66.0F3A.WIG 41 /r","Vdq:w Hdq Wdq Ib")
both("VMPSADBW","66","0F3A","42",NDS+" Ib",int2=True)
v("VPCLMULQDQ","VEX.128.66.0F3A.WIG 44 /r","Vdq:w Hdq Wdq Ib","PCLMULQDQ")
v("VPERM2I128","VEX.256.66.0F3A.W0 46 /r",NDS+" Ib","AVX2")
v("VBLENDVPS","VEX.66.0F3A.W0 4A /r",NDS+" Ib"); v("VBLENDVPD","VEX.66.0F3A.W0 4B /r",NDS+" Ib")
both("VPBLENDVB","66","0F3A","4C",NDS+" Ib",w="W0",int2=True)
for i,n in enumerate(["VPCMPESTRM","VPCMPESTRI","VPCMPISTRM","VPCMPISTRI"]):
    if n in ("VPCMPESTRM","VPCMPESTRI"):
        v(n,f"VEX.128.66.0F3A.W0 {0x60+i:02X} /r","Vdq Wdq Ib",flags="w:oszc 0:ap"); v(n+"64",f"VEX.128.66.0F3A.W1 {0x60+i:02X} /r","Vdq Wdq Ib",flags="w:oszc 0:ap",attrs="o64"); v(n,f"VEX.128.66.0F3A.W1 {0x60+i:02X} /r","Vdq Wdq Ib",flags="w:oszc 0:ap",attrs="i64")
    else: v(n,f"VEX.128.66.0F3A.WIG {0x60+i:02X} /r","Vdq Wdq Ib",flags="w:oszc 0:ap")
v("VAESKEYGENASSIST","VEX.128.66.0F3A.WIG DF /r","Vdq:w Wdq Ib","AES")
open("data/05-vex.txt","w").write("\n".join(L)+"\n")
